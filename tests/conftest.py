"""Fixtures: one real redis-server per session (pytest-redis), wiped before each test.

FLUSHALL keeps functions, so every test also runs FUNCTION FLUSH.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest
import redis

import agentfn
from agentfn.library.render import render_library


@pytest.fixture(scope="session")
def library() -> agentfn.library.render.RenderedLibrary:
    """The library as this checkout renders it."""
    return render_library()


@pytest.fixture
def r(redis_proc) -> Iterator[redis.Redis]:
    """A decoded client on an empty server with no functions loaded."""
    client = redis.Redis(host=redis_proc.host, port=redis_proc.port, decode_responses=True)
    client.flushall()
    client.function_flush()
    yield client
    client.close()


@pytest.fixture
def raw(redis_proc, r) -> Iterator[redis.Redis]:
    """A client that returns bytes (for DUMP), on the same emptied server as ``r``."""
    client = redis.Redis(host=redis_proc.host, port=redis_proc.port)
    yield client
    client.close()


@pytest.fixture
def redis_url(redis_proc) -> str:
    return f"redis://{redis_proc.host}:{redis_proc.port}/0"


@pytest.fixture
def deployed(r: redis.Redis) -> redis.Redis:
    """``r`` with the library loaded and namespace 'default' migrated."""
    agentfn.deploy(r, "default")
    return r


@pytest.fixture
def client(deployed: redis.Redis) -> agentfn.Client:
    return agentfn.Client(deployed, "default")


@pytest.fixture
def redis_cli(redis_proc) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run redis-cli against the test server: redis_cli('FCALL', ..., input=text)."""

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["redis-cli", "-h", redis_proc.host, "-p", str(redis_proc.port), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )

    return run
