"""The release files (release/): generated from lua/ and migrations/ and kept current, and
release/deploy.sh deploying them with redis-cli alone, as a Node or Go team would."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import agentfn
from agentfn.library.deploy import deployed_library
from agentfn.library.migrate import schema_version
from agentfn.library.release import stale_release_files
from agentfn.library.render import render_library

RELEASE = Path(__file__).resolve().parent.parent / "release"


def deploy_sh(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(RELEASE / "deploy.sh"), *args],
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_release_files_are_current():
    assert stale_release_files(RELEASE) == [], "stale release files: run `make release`"


def test_redis_cli_deploy_loads_the_library_and_migrates_then_changes_nothing(r, redis_url):
    done = deploy_sh(redis_url, "shipped")
    assert done.returncode == 0, done.stderr
    migrations = sorted(path.name for path in (RELEASE / "migrations").glob("*.lua"))
    assert done.stdout.splitlines() == [
        f"loaded agentfn {agentfn.__version__}",
        *(f"applied {name} to namespace shipped" for name in migrations),
    ]
    info = deployed_library(r, "shipped")
    assert info is not None and info.code_sha == render_library().code_sha
    assert schema_version(r, "shipped") == info.library_schema_version
    assert r.get("agentfn:{shipped}:migrate-lock") is None  # released
    # a Python client works against it at once
    client = agentfn.Client(r, "shipped")
    client.agent_register("node-1", ["x"])
    assert [a.id for a in client.agent_find("x")] == ["node-1"]

    again = deploy_sh(redis_url, "shipped")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"library agentfn {agentfn.__version__} already loaded",
        f"namespace shipped up to date (schema {len(migrations)})",
    ]


def test_redis_cli_deploy_refuses_to_replace_a_newer_library(r, redis_url):
    agentfn.deploy(r, "default", library=render_library(version="99.0.0"))
    done = deploy_sh(redis_url)
    assert done.returncode == 1
    assert done.stderr == (
        f"deploy.sh: the loaded agentfn library 99.0.0 is newer than {agentfn.__version__}; "
        "FORCE=1 replaces it\n"
    )
    assert deployed_library(r).library == "99.0.0"
