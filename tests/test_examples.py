"""Every example runs, and the README shows them as they are (its code blocks are these files).

The Python examples start their own temporary redis-server (agentfn.local_redis without
REDIS_URL); examples/redis_cli.sh runs against the test server. examples/node is run by
tests/test_crosslang.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agentfn.constants import DEFAULTS, LIMITS

CHECKOUT = Path(__file__).resolve().parent.parent
EXAMPLES = CHECKOUT / "examples"
README = (CHECKOUT / "README.md").read_text(encoding="utf-8")
ENV = {
    name: value
    for name, value in os.environ.items()
    if name not in ("REDIS_URL", "AGENTFN_NAMESPACE")
}

#: What each Python example prints when it worked.
EXPECTED = {
    "agents.py": ["submitted t1", "completed {'topic': 'Redis Functions'", "done by researcher-1"],
    "workflows.py": [
        "'code': {'code': \"print('Redis Functions keeps state in Redis')\"}",
        "fan-in completed",
        "'article': 'Streams keeps state in Redis Pub/Sub keeps state in Redis'",
        "{'audience': 'operators'}",
    ],
    "asyncio_agent.py": [
        "completed {'for': 'operators', 'draft': 'notes on Streams'}",
        "context {'audience': 'operators', 'drafted': 'Streams'}",
    ],
    "messages.py": [
        "reply: {'text': 'HELLO'}",
        "planner-1 got note {'priority': 'high'} from app",
        "broadcast reached ['planner-1']",
    ],
}

#: Fenced code blocks of the README: (language, text).
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```", README, flags=re.M | re.S)


def test_every_python_example_has_an_expectation():
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_python_example_runs(name):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        cwd=CHECKOUT,
    )
    assert done.returncode == 0, done.stderr
    for fragment in EXPECTED[name]:
        assert fragment in done.stdout, f"{name} did not print {fragment!r}:\n{done.stdout}"


def test_workflows_example_runs_twice_on_the_same_redis(redis_url, r):
    for run in (1, 2):
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / "workflows.py")],
            capture_output=True,
            text=True,
            timeout=60,
            env={**ENV, "REDIS_URL": redis_url},
            cwd=CHECKOUT,
        )
        assert done.returncode == 0, done.stderr
        assert "fan-in completed" in done.stdout
        assert ("exists already" in done.stdout) == (run == 2)


def test_redis_cli_example_runs_the_lifecycle_with_fcall_alone(redis_url, r):
    env = {
        **ENV,
        "REDIS_URL": redis_url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{ENV['PATH']}",
    }
    done = subprocess.run(
        ["sh", str(EXAMPLES / "redis_cli.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=CHECKOUT,
    )
    assert done.returncode == 0, done.stderr
    assert '"completed"' in done.stdout and r'"{\"words\":3}"' in done.stdout
    # The agent's secret (32 hex characters, from /dev/urandom) is passed, never printed.
    assert not re.search(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])", done.stdout + done.stderr)
    namespace = next(key for key in r.scan_iter("agentfn:{cli-example-*}:meta"))
    assert r.hget(namespace.replace(":meta", ":task:t1"), "state") == "completed"


def test_every_python_block_of_the_readme_is_an_example_file_verbatim():
    python_blocks = [text for language, text in BLOCKS if language == "python"]
    assert python_blocks
    shown = set()
    for text in python_blocks:
        first, _, body = text.partition("\n")
        match = re.fullmatch(r"# (examples/\S+)", first)
        assert match, (
            f"a Python block of the README does not start with '# examples/<file>': {first!r}"
        )
        assert body == (CHECKOUT / match[1]).read_text(encoding="utf-8"), (
            f"README's {match[1]} differs"
        )
        shown.add(match[1])
    frameworks = {
        f"examples/frameworks/{path.name}" for path in (EXAMPLES / "frameworks").glob("*.py")
    }
    assert {f"examples/{name}" for name in EXPECTED} <= shown
    assert shown - {f"examples/{name}" for name in EXPECTED} <= frameworks  # run by test_frameworks


def test_readme_shell_blocks_naming_an_example_show_it_verbatim():
    named = [
        text for language, text in BLOCKS if language == "sh" and text.startswith("# examples/")
    ]
    assert named
    for text in named:
        first, _, body = text.partition("\n")
        path = first[2:]
        source = (CHECKOUT / path).read_text(encoding="utf-8")
        if source.startswith("#!"):
            source = source.partition("\n")[2]  # the README leaves out the shebang line
        assert body == source, f"README's {path} differs"


def test_readme_starts_with_the_two_commands_and_lists_every_setting():
    opening = README.split("\n## ", 1)[0]
    assert "make demo" in opening and "make test" in opening
    for name in [*DEFAULTS, *LIMITS]:
        assert f"`{name}`" in README, f"README's configuration table misses {name}"
    for option in ("REDIS_URL", "AGENTFN_NAMESPACE", "--url", "--namespace", "--json", "--no-live"):
        assert option in README
