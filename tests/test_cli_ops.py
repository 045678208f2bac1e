"""The operator commands, driven as a subprocess against the test redis-server, output asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import IO

import pytest

import agentfn

ENV = {
    name: value
    for name, value in os.environ.items()
    if name not in ("REDIS_URL", "AGENTFN_NAMESPACE")
}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentfn", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )


def cli_json(*args: str) -> object:
    done = cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentfn", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def read_line(stream: IO[str] | None) -> str:
    assert stream is not None
    line = stream.readline()
    assert line, "the command exited before printing a line"
    return line


def assert_one_line_error(
    done: subprocess.CompletedProcess[str], *fragments: str, status: int = 1
) -> None:
    assert done.returncode == status
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr


@pytest.fixture
def busy(client: agentfn.Client) -> dict[str, str]:
    """A namespace with one live agent, a ready, a running, a delayed and a dead task."""
    client.agent_register("researcher-1", ["research"])
    ids = {
        "dead": client.submit("research", {"topic": "dead"}, max_attempts=1),
        "running": client.submit("research", {"topic": "running"}),
        "ready": client.submit("research", {"topic": "ready"}),
        "delayed": client.submit("write", {"topic": "later"}, delay_ms=600_000),
    }
    first = client.claim("researcher-1").tasks[0]
    assert first.id == ids["dead"]
    assert client.fail(first.id, first.token, "boom").state == "dead"
    assert client.claim("researcher-1").tasks[0].id == ids["running"]
    return ids


def test_status_counts_agents_queues_leases_delays_and_dead_letters(redis_url, busy):
    status = cli_json("status", "--url", redis_url)
    assert status["totals"] == {"live_agents": 1, "ready": 1, "running": 1, "delayed": 1, "dead": 1}
    assert status["temporary"] is False
    assert [(a["id"], a["status"], a["running"]) for a in status["agents"]] == [
        ("researcher-1", "live", 1)
    ]
    assert [
        (q["capability"], q["priority"], q["ready"], q["in_flight"]) for q in status["queues"]
    ] == [("research", "normal", 1, 1)]
    assert status["library"]["library"] == agentfn.__version__

    text = cli("status", "--url", redis_url)
    assert text.returncode == 0, text.stderr
    assert "1 ready, 1 running, 1 delayed, 1 dead" in text.stdout
    assert "researcher-1" in text.stdout and "live" in text.stdout
    assert "research" in text.stdout and "normal" in text.stdout


def test_status_counts_direct_queues_messages_and_workflows(redis_url, client):
    client.agent_register("writer-1", ["write"])
    client.submit("write", {}, to="writer-1")
    client.send("app", "writer-1", "note", {"n": 1})
    client.create_workflow([{"id": "only", "capability": "code", "input": {}}], workflow_id="w")
    status = cli_json("status", "--url", redis_url)
    assert [(q["capability"], q["priority"], q["ready"]) for q in status["queues"]] == [
        ("@writer-1", "direct", 1),
        ("code", "normal", 1),
    ]
    assert status["messages"] == 1
    assert status["workflows"] == {"running": 1, "completed": 0, "failed": 0, "canceled": 0}


def test_status_of_another_namespace_is_empty(redis_url, busy):
    status = cli_json("status", "--url", redis_url, "--namespace", "other")
    assert status["totals"] == {"live_agents": 0, "ready": 0, "running": 0, "delayed": 0, "dead": 0}
    assert status["agents"] == [] and status["queues"] == []


def test_commands_refuse_in_one_line_without_the_library(redis_url, r):
    for command in (["status"], ["task", "show", "t1"], ["dead-letters", "list"]):
        done = cli(*command, "--url", redis_url)
        assert_one_line_error(done, "not deployed", "agentfn deploy")


def test_bad_namespace_is_one_line(redis_url, deployed):
    assert_one_line_error(
        cli("status", "--url", redis_url, "--namespace", "no spaces"), "--namespace", status=2
    )


def test_events_lists_the_latest_and_filters_by_type(redis_url, busy):
    done = cli("events", "--url", redis_url, "--count", "50", "--json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = [event["type"] for event in events]
    assert kinds[0] == "agent.registered"
    assert "task.dead" in kinds and kinds.count("task.submitted") == 4
    assert all(set(event) >= {"id", "ms", "type"} for event in events)

    done = cli("events", "--url", redis_url, "--count", "50", "--type", "task.dead")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1
    assert "task.dead" in done.stdout and f"task={busy['dead']}" in done.stdout


def test_events_follow_prints_new_events_as_they_come(redis_url, client):
    client.agent_register("a1", ["research"])
    follower = spawn("events", "--url", redis_url, "--follow", "--count", "1", "--json")
    try:
        assert json.loads(read_line(follower.stdout))["type"] == "agent.registered"
        task_id = client.submit("research", {})  # after the backlog was printed: it is followed
        event = json.loads(read_line(follower.stdout))
        assert (event["type"], event["task"]) == ("task.submitted", task_id)
    finally:
        follower.terminate()
        follower.wait(10)


def test_top_redraws_when_the_namespace_changes(redis_url, client):
    top = spawn("top", "--url", redis_url, "--json", "--count", "2", "--interval", "60")
    try:
        first = json.loads(read_line(top.stdout))
        assert first["totals"]["ready"] == 0
        client.submit("research", {})  # an event: top redraws now, not in 60 s
        second = json.loads(read_line(top.stdout))
        assert second["totals"]["ready"] == 1
        assert top.wait(10) == 0
    finally:
        top.kill()


def test_top_redraws_a_quiet_namespace_at_its_interval(redis_url, deployed):
    done = cli("top", "--url", redis_url, "--count", "2", "--interval", "0.05")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("namespace default") == 2


def test_task_show(redis_url, busy):
    done = cli("task", "show", busy["dead"], "--url", redis_url)
    assert done.returncode == 0, done.stderr
    assert "dead" in done.stdout and '{"topic":"dead"}' in done.stdout
    assert (
        "Failed attempts" in done.stdout and "boom" in done.stdout and "researcher-1" in done.stdout
    )

    shown = cli_json("task", "show", busy["running"], "--url", redis_url)
    assert (shown["id"], shown["state"], shown["agent"], shown["attempt"]) == (
        busy["running"],
        "running",
        "researcher-1",
        1,
    )
    assert shown["payload"] == {"topic": "running"}

    assert_one_line_error(cli("task", "show", "t999", "--url", redis_url), "NOTFOUND", "t999")


def test_workflow_show_draws_the_steps_as_a_tree(redis_url, client):
    client.create_workflow(
        [
            {"id": "research", "capability": "research", "input": {}},
            {"id": "write", "capability": "write", "input": {}, "depends_on": ["research"]},
            {"id": "code", "capability": "code", "input": {}, "depends_on": ["write"]},
        ],
        workflow_id="blog",
    )
    done = cli("workflow", "show", "blog", "--url", redis_url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "workflow blog" in lines[0] and "running" in lines[0]
    research, write, code = (
        next(line for line in lines if f" {name} [" in line)
        for name in ("research", "write", "code")
    )
    assert "queued" in research and "waiting" in write and "waiting" in code
    # each step hangs one level below the step it depends on
    assert research.index("research") < write.index("write") < code.index("code")

    shown = cli_json("workflow", "show", "blog", "--url", redis_url)
    assert [(s["id"], s["state"]) for s in shown["steps"]] == [
        ("research", "queued"),
        ("write", "waiting"),
        ("code", "waiting"),
    ]

    assert_one_line_error(cli("workflow", "show", "nope", "--url", redis_url), "NOTFOUND", "nope")


def test_dead_letters_list_and_requeue(redis_url, busy, client):
    listed = cli("dead-letters", "list", "--url", redis_url)
    assert listed.returncode == 0, listed.stderr
    assert f"task={busy['dead']}" in listed.stdout and "error=boom" in listed.stdout
    assert "1 dead letter(s)" in listed.stdout
    assert [entry["task"] for entry in cli_json("dead-letters", "list", "--url", redis_url)] == [
        busy["dead"]
    ]

    requeued = cli("dead-letters", "requeue", busy["dead"], "--url", redis_url)
    assert requeued.returncode == 0, requeued.stderr
    assert requeued.stdout.strip() == f"{busy['dead']}: queued"
    assert client.get_task(busy["dead"]).state == "queued"
    assert "no dead letters" in cli("dead-letters", "list", "--url", redis_url).stdout

    assert_one_line_error(cli("dead-letters", "requeue", busy["dead"], "--url", redis_url), "STATE")
