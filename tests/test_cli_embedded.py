"""EmbeddedRedis, and the CLI's fall-back to it when no Redis is named."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest
import redis

from agentfn import server
from agentfn.server import EmbeddedRedis, EmbeddedRedisError

CHILD = textwrap.dedent("""
    import signal, sys
    from agentfn.server import EmbeddedRedis
    # As a process started from a terminal: the test runner may run under nohup or in a
    # background job, whose ignored SIGHUP/SIGINT a child would inherit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    with EmbeddedRedis() as embedded:
        print(embedded.pid, embedded.port, embedded.directory, flush=True)
        sys.stdin.read()  # block until the test signals this process
""")


NO_REDIS_ENV = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "AGENTFN_NAMESPACE")}


def assert_stopped(pid: int, port: int) -> None:
    assert not os.path.exists(f"/proc/{pid}"), f"redis-server {pid} is still running"
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=1, retry=None).ping()


def assert_gone(pid: int, port: int, directory: str) -> None:
    """The server process has exited, nothing listens on its port, its directory is deleted."""
    assert_stopped(pid, port)
    assert not os.path.exists(directory)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentfn", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_embedded_server_serves_without_persistence_and_is_removed_on_exit():
    with EmbeddedRedis() as embedded:
        client = embedded.client()
        assert client.ping()
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert client.config_get("dir")["dir"] == os.path.realpath(embedded.directory)
        assert embedded.url == f"redis://127.0.0.1:{embedded.port}/0"
        pid, port, directory = embedded.pid, embedded.port, embedded.directory
        client.close()
    assert embedded.pid is None
    assert_gone(pid, port, directory)


def test_two_embedded_servers_get_their_own_ports():
    with EmbeddedRedis() as first, EmbeddedRedis() as second:
        assert first.port != second.port
        first.client().set("k", "first")
        assert second.client().get("k") is None


def test_missing_redis_server_names_the_package_to_install(monkeypatch):
    monkeypatch.setattr(server, "_FALLBACK_LOCATIONS", ())
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EmbeddedRedisError, match="apt-get install redis-server"):
        EmbeddedRedis()
    with pytest.raises(EmbeddedRedisError, match="apt-get install redis-server"):
        EmbeddedRedis("/nonexistent/redis-server").start()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_interrupted_owner_stops_its_server(signum):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    pid, port, directory = child.stdout.readline().split()
    assert redis.Redis(port=int(port)).ping()
    child.send_signal(signum)
    # stdin stays open until the child has exited: closing it (communicate) would let a child that
    # is slow to take the signal read EOF and leave its `with` block normally, a race on load
    child.wait(timeout=30)
    child.communicate()
    assert child.returncode != 0
    assert_gone(int(pid), int(port), directory)


def temporary_server(notice: str) -> tuple[int, int]:
    """The pid and port the CLI's notice names for its temporary server."""
    found = re.search(
        r"temporary, empty redis-server \(pid (\d+)\) at redis://127\.0\.0\.1:(\d+)/0", notice
    )
    assert found, notice
    return int(found[1]), int(found[2])


def test_cli_without_url_uses_a_temporary_server_and_says_so():
    done = cli("status", env=NO_REDIS_ENV)
    assert done.returncode == 0, done.stderr
    assert "temporary, empty redis-server started for this command" in done.stdout
    assert "0 live" in done.stdout
    assert_stopped(*temporary_server(done.stderr))


def test_a_long_running_command_on_a_temporary_server_stops_it_on_sigterm():
    top = subprocess.Popen(
        [sys.executable, "-m", "agentfn", "top", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=NO_REDIS_ENV,
    )
    assert top.stdout is not None and top.stderr is not None
    pid, port = temporary_server(top.stderr.readline())
    assert json.loads(top.stdout.readline())["temporary"] is True
    top.terminate()
    top.communicate(timeout=30)
    assert top.returncode != 0
    assert_stopped(pid, port)


def test_cli_reports_an_unreachable_redis_in_one_line():
    done = cli("status", "--url", "redis://127.0.0.1:1/0")
    assert done.returncode == 1
    assert done.stderr.startswith("agentfn: cannot reach Redis at redis://127.0.0.1:1/0")
    assert len(done.stderr.strip().splitlines()) == 1
