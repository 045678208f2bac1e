"""The framework examples (examples/frameworks) run with their frameworks' own offline models:
an LLM agent written with pydantic-ai / the OpenAI Agents SDK serves a workflow step, and its
tools reach other agents (a subtask) and the workflow's shared context through agentfn."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FRAMEWORKS = Path(__file__).resolve().parent.parent / "examples" / "frameworks"
ENV = {
    name: value for name, value in os.environ.items() if name not in ("REDIS_URL", "OPENAI_API_KEY")
}

#: Example -> (the module it needs, what it prints when it worked).
EXPECTED = {
    "pydantic_ai_agent.py": (
        "pydantic_ai",
        "completed {'answer': 'For operators: Redis Functions keep every transition in one FCALL.'}",
    ),
    "openai_agents_agent.py": (
        "agents",
        "completed {'answer': 'For developers: Streams wake idle agents with XREAD BLOCK.'}",
    ),
}


def test_every_framework_example_has_an_expectation():
    assert sorted(path.name for path in FRAMEWORKS.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_framework_example_runs_offline(name):
    module, expected = EXPECTED[name]
    pytest.importorskip(module)
    done = subprocess.run(
        [sys.executable, str(FRAMEWORKS / name)],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == expected
