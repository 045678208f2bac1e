"""`agentfn demo --no-live`: both workflows complete, the killed agent's task is recovered, nothing leaks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
import redis

import agentfn

ENV = {
    name: value
    for name, value in os.environ.items()
    if name not in ("REDIS_URL", "AGENTFN_NAMESPACE")
}

#: What the issue promises about the demo's duration.
DEMO_BUDGET_S = 30.0


def run_demo(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "agentfn", "demo", "--no-live", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    return done, time.monotonic() - began


def assert_story(output: str) -> None:
    """Both workflows completed, and the task the killed researcher held was finished by the other one."""
    assert "workflow multi-agent completed" in output
    assert "workflow fan-in completed" in output
    kill = re.search(r"SIGKILL researcher-1 \(pid (\d+)\) while it holds (t\d+)", output)
    assert kill, output
    pid, task_id = int(kill[1]), kill[2]
    assert f"{task_id} is leased to a dead agent" in output
    assert re.search(rf"{task_id} \S+: running on researcher-2 \(attempt 2\)", output), output
    assert (
        f"{task_id} recovered: researcher-1 was killed holding it, researcher-2 completed it on attempt 2"
        in output
    )
    assert (
        "Totals: 2 of 2 workflows completed, 8 steps, 9 attempts (1 retried), 6 messages" in output
    )
    assert not os.path.exists(f"/proc/{pid}")


def test_demo_runs_both_workflows_recovers_the_killed_agents_task_and_cleans_up():
    done, took = run_demo()
    assert done.returncode == 0, done.stdout + done.stderr
    assert_story(done.stdout)
    assert took < DEMO_BUDGET_S, f"the demo took {took:.1f} s"
    server = re.search(r"temporary redis-server pid (\d+) on 127\.0\.0\.1:(\d+)", done.stdout)
    assert server, done.stdout
    pid, port = int(server[1]), int(server[2])
    assert not os.path.exists(f"/proc/{pid}"), f"the demo's redis-server {pid} is still running"
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=1).ping()
    assert "the agents and the redis-server are stopped" in done.stdout


def test_demo_against_an_existing_redis_uses_a_fresh_namespace(redis_url, r):
    r.set("someone-else:key", "untouched")
    done, _ = run_demo("--url", redis_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_story(done.stdout)
    namespace = re.search(r"namespace (demo-\d{8}-\d{6})", done.stdout)[1]
    assert r.get("someone-else:key") == "untouched"
    assert {key.split("}")[0] for key in r.scan_iter("agentfn:*")} == {f"agentfn:{{{namespace}"}
    info = agentfn.Client(r, namespace).get_workflow("fan-in")
    assert info.state == agentfn.WorkflowState.COMPLETED

    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentfn",
            "demo",
            "--no-live",
            "--url",
            redis_url,
            "--namespace",
            namespace,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    assert again.returncode == 1
    assert (
        again.stderr.strip()
        == f"agentfn: namespace {namespace} is not empty: pick a new one with --namespace"
    )
