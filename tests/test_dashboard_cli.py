"""The watching commands' edges: optional packages stay unimported, and refusals are one line."""

from __future__ import annotations

import subprocess
import sys

from tests.dashboard_helpers import ENV, REPO

OPTIONAL = ("starlette", "uvicorn", "prometheus_client", "opentelemetry", "playwright")


def test_agentfn_and_its_cli_work_without_any_optional_package() -> None:
    """With every optional package made unimportable (redis-py itself imports opentelemetry when it
    is installed, so "not in sys.modules" could not tell), agentfn and its CLI import and work."""
    code = (
        f"import sys; sys.modules.update(dict.fromkeys({OPTIONAL!r})); "
        "import agentfn, agentfn.cli.main; agentfn.cli.main.build_parser(); print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO, env=ENV
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_dashboard_refuses_a_namespace_without_the_library(redis_url: str, r) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentfn", "dashboard", "--url", redis_url, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=ENV,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "agentfn deploy" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_the_extra_the_command_names_it() -> None:
    code = (
        "import sys; sys.modules['starlette'] = None; from agentfn.cli.main import main; "
        "sys.exit(main(['dashboard', '--url', 'redis://127.0.0.1:1']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO, env=ENV
    )
    assert done.returncode == 1
    assert "pip install 'agentfn[dashboard]'" in done.stderr and done.stderr.count("\n") == 1
