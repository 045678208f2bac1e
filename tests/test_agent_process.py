"""Agents as separate OS processes (`python -m agentfn worker`): SIGKILL, SIGTERM, the command."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading

from agentfn import keys

from . import agent_fixtures
from .agent_fixtures import STARTED, release_key, serving, spawn_worker, wait_for_task

DONE = {"completed", "failed", "dead", "canceled"}


def _started(r, timeout: float = 15.0) -> str:
    item = r.blpop([STARTED], timeout=timeout)
    assert item is not None, "no handler started"
    return item[1]


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=10)


def test_task_of_a_killed_agent_is_redelivered_after_its_lease_and_completed_once(
    client, r, redis_url
):
    task_id = client.submit("crashy", {"n": 1})
    worker = spawn_worker(redis_url, "tests.agent_fixtures:crash_agent", "--agent-id", "doomed")
    try:
        assert _started(r) == f"doomed:{task_id}:1"
        running = client.get_task(task_id)
        assert (running.state, running.agent) == ("running", "doomed")
        worker.send_signal(
            signal.SIGKILL
        )  # mid-task: no deregister, no completion, no more renewals
        worker.wait(timeout=10)
    finally:
        _stop(worker)
    killed_ms = client.get_task(task_id).lease_deadline_ms

    rescuer = agent_fixtures.crash_agent(client)
    rescuer.agent_id = "rescuer"
    with serving(rescuer):
        assert _started(r) == f"rescuer:{task_id}:2"
        info = wait_for_task(client, task_id, DONE)

    assert (info.state, info.attempt, info.agent) == ("completed", 2, "rescuer")
    assert info.result == {"agent": "rescuer", "attempt": 2}
    assert [(e["attempt"], e["agent"], e["error"]) for e in info.errors] == [
        (1, "doomed", "lease expired")
    ]
    assert info.errors[0]["at_ms"] >= killed_ms  # redelivered once the lease ran out, not before
    completions = [
        fields
        for _, fields in r.xrange(keys.events(client.namespace))
        if fields.get("type") == "task.completed" and fields.get("task") == task_id
    ]
    assert len(completions) == 1


def test_sigterm_finishes_running_work_and_hands_back_the_rest_at_once(client, r, redis_url):
    quick = client.submit("gated", {"name": "quick"})
    stuck = client.submit("gated", {"name": "stuck"}, timeout_ms=120_000)
    worker = spawn_worker(redis_url, "tests.agent_fixtures:gated_agent")
    try:
        assert {_started(r), _started(r)} == {f"gated-agent:{quick}:1", f"gated-agent:{stuck}:1"}
        worker.send_signal(signal.SIGTERM)
        later = client.submit("gated", {"name": "after the stop"})
        r.rpush(release_key(quick), "go")  # finishes within the 1 s grace period; stuck does not
        assert worker.wait(timeout=15) == 0
    finally:
        _stop(worker)
    assert client.get_task(quick).state == "completed"
    stuck_info = client.get_task(stuck)
    # Handed back when the grace period ended (deregister), not after its 120 s lease.
    assert stuck_info.state == "queued"
    assert stuck_info.errors[0]["error"] == "agent gated-agent deregistered"
    assert client.get_task(later).state == "queued"  # nothing claimed after SIGTERM
    assert client.agent_find() == []


def _stderr_says(process: subprocess.Popen[str], text: str, timeout: float = 15.0) -> None:
    """Wait for a line of the process's stderr containing ``text`` (read on a thread)."""
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    assert process.stderr is not None
    stream = process.stderr
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    seen = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line with {text!r} on stderr: {seen}") from None
        seen.append(line)
        if text in line:
            return


def test_sigterm_while_waiting_for_the_id_exits_at_once_unregistered(client, r, redis_url):
    """Another process holds the id (live, 10 min TTL): the worker waits for it to lapse
    (twice its own TTL by default) and a SIGTERM meanwhile ends it at once with status 0."""
    holder = client.agent_register("held", ["echo"], ttl_ms=600_000)
    worker = spawn_worker(redis_url, "tests.agent_fixtures:plain", "--agent-id", "held")
    try:
        _stderr_says(worker, "agent held is registered by another process")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0
    finally:
        _stop(worker)
    record = r.hgetall(keys.agent(client.namespace, "held"))
    assert (record["status"], record["registered_ms"]) == ("live", str(holder.registered_ms))


def test_worker_serves_an_agent_object_and_overrides_its_settings(client, r, redis_url):
    task_id = client.submit("echo", {"hello": "world"})
    worker = spawn_worker(
        redis_url, "tests.agent_fixtures:plain", "--agent-id", "echo-7", "--concurrency", "3"
    )
    try:
        assert _started(r) == f"echo-7:{task_id}:1"
        info = wait_for_task(client, task_id, DONE)
        assert (info.state, info.result) == ("completed", {"hello": "world"})
        worker.send_signal(signal.SIGINT)
        assert worker.wait(timeout=15) == 0
    finally:
        _stop(worker)


def test_worker_reports_a_bad_target(redis_url, deployed):
    for target, message in [
        ("nocolon", "expected module:attribute"),
        ("tests.no_such_module:x", "cannot import tests.no_such_module"),
        ("tests.agent_fixtures:missing", "has no attribute missing"),
        ("tests.agent_fixtures:STARTED", "neither an agentfn.Agent"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "agentfn", "worker", target, "--url", redis_url],
            cwd=agent_fixtures.REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr  # a usage error
        assert message in done.stderr


def test_worker_refuses_a_redis_without_the_library(r, redis_url):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentfn",
            "worker",
            "tests.agent_fixtures:plain",
            "--url",
            redis_url,
        ],
        cwd=agent_fixtures.REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "agentfn deploy" in done.stderr
