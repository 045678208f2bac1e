"""Status without SCAN (issue 17 item 6, issue 14): the library keeps index keys of inboxes,
lapsed agents' records and workflows by state; `agentfn status`, the dashboard's overview and
the metrics read them (and the work-stream set), never SCAN, and show the rows a SCAN finds.
The indexes empty themselves once what they list expires, and migration 0003 builds them for a
namespace made before them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import redis

import agentfn
from agentfn import keys
from agentfn.client.status import read_status, read_workflow_rows
from agentfn.dashboard.activity import Activity
from agentfn.dashboard.metrics import exposition
from agentfn.dashboard.reads import Namespace, overview
from agentfn.library.migrate import migrate

from .helpers import ROOT, fcall, pairs, secret_of, server_ms, wait_until

ENV = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "AGENTFN_NAMESPACE")}
INDEXES = [f"{ROOT}:lapsed", f"{ROOT}:inboxes", f"{ROOT}:wf-expiry"] + [
    f"{ROOT}:workflows:{state}" for state in ("running", "completed", "failed", "canceled")
]


def scans(r: redis.Redis) -> int:
    """How many SCAN commands the server has run."""
    return int(r.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))


def scanned(r: redis.Redis, family: str, kind: str) -> set[str]:
    """The test's own oracle: the ids of one key family, found with SCAN (sub-keys left out)."""
    prefix = f"{ROOT}:{family}:"
    found = r.scan_iter(match=prefix + "*", _type=kind, count=1_000)
    return {key[len(prefix) :] for key in found if ":" not in key[len(prefix) :]}


def populate(r: redis.Redis, client: agentfn.Client) -> None:
    """Live and lapsed agents, queued and direct tasks, inboxes, workflows in three states."""
    fcall(r, "agentfn_agent_register", "live-1", secret_of("live-1"), "code,wfcap")
    fcall(r, "agentfn_agent_register", "gone-1", secret_of("gone-1"), "code")
    beat = pairs(fcall(r, "agentfn_agent_heartbeat", "gone-1", secret_of("gone-1"), "TTL_MS", "1"))
    wait_until(r, int(beat["expires_ms"]))
    client.reap()  # gone-1 lapses: its record is kept for agent_retention_ms
    client.submit("code", {"n": 1})
    client.submit("code", {"n": 2}, to="live-1")
    client.send("planner", "live-1", "note", {"text": "hi"})
    client.send("planner", "ghost", "note", {}, allow_unregistered=True)
    client.create_workflow([{"id": "s", "capability": "wfcap", "input": {}}], workflow_id="run")
    client.create_workflow([{"id": "s", "capability": "other", "input": {}}], workflow_id="stop")
    client.cancel_workflow("stop")
    client.create_workflow([{"id": "s", "capability": "wfcap", "input": {}}], workflow_id="done")
    for task in client.claim("live-1", count=5, secret=secret_of("live-1")).tasks:
        if task.capability == "wfcap" and task.workflow == "done":
            client.complete(task.id, task.token, "ok")


def test_status_dashboard_and_metrics_read_indexes_not_scan(deployed, redis_url):
    r = deployed
    client = agentfn.Client(r, "default")
    populate(r, client)
    before = scans(r)

    done = subprocess.run(
        [sys.executable, "-m", "agentfn", "status", "--url", redis_url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    page = overview(Namespace(r, client, "default", Activity()))
    metrics = exposition(r, ["default"])().decode()
    assert scans(r) == before, "a status read sent SCAN"

    # The same rows as a SCAN of the namespace finds.
    agent_ids = {a["id"] for a in status["agents"]}
    assert agent_ids == scanned(r, "agent", "hash") == {"live-1", "gone-1"}
    assert {(a["id"], a["status"]) for a in status["agents"]} == {
        ("live-1", "live"),
        ("gone-1", "lapsed"),
    }
    streams = {
        key
        for family in ("queue", "direct")
        for key in r.scan_iter(match=f"{ROOT}:{family}:*", _type="stream")
    }
    assert {q["stream"] for q in status["queues"]} == streams
    assert {row.id for row in page["workflows"]} == scanned(r, "wf", "hash")
    assert {(row.id, row.state) for row in read_workflow_rows(r, "default")} == {
        ("run", "running"),
        ("stop", "canceled"),
        ("done", "completed"),
    }
    assert status["workflows"] == {"running": 1, "completed": 1, "failed": 0, "canceled": 1}
    assert scanned(r, "inbox", "stream") == {"live-1", "ghost"}
    assert status["messages"] == 2
    assert 'agentfn_inbox_messages{agent="ghost",namespace="default"} 1.0' in metrics
    assert 'agentfn_workflows{namespace="default",state="canceled"} 1.0' in metrics
    assert scans(r) > before  # the oracle's SCANs are counted: the counter is the right one


def test_indexes_empty_themselves_when_what_they_list_expires(deployed):
    r = deployed
    client = agentfn.Client(r, "default")
    r.hset(f"{ROOT}:meta", "agent_retention_ms", "5")
    fcall(r, "agentfn_agent_register", "gone-1", secret_of("gone-1"), "code", "TTL_MS", "1")
    client.send("planner", "ghost", "note", {}, allow_unregistered=True, ttl_ms=1)
    client.create_workflow(
        [{"id": "s", "capability": "x", "input": {}}], workflow_id="w", retention_ms=1
    )
    client.cancel_workflow("w")
    wait_until(r, server_ms(r) + 2)
    client.reap()  # gone-1 lapses (record kept 5 ms), the message expires
    assert r.zscore(f"{ROOT}:lapsed", "gone-1") is not None
    wait_until(r, server_ms(r) + 6)
    while any(client.reap().values()):
        pass
    assert [index for index in INDEXES if r.exists(index)] == []
    status = read_status(r, "default")
    assert status.agents == [] and status.workflows == {} and status.messages == 0


def test_migration_0003_builds_the_indexes_of_an_older_namespace(deployed):
    r = deployed
    client = agentfn.Client(r, "default")
    populate(r, client)
    built = {index: r.zrange(index, 0, -1, withscores=True) for index in INDEXES}
    assert built[f"{ROOT}:lapsed"] and built[f"{ROOT}:inboxes"] and built[f"{ROOT}:wf-expiry"]
    r.delete(*INDEXES)
    r.hset(keys.meta("default"), "schema_version", 2)

    assert [m.number for m in migrate(r, "default")] == [3, 4]
    rebuilt = {index: r.zrange(index, 0, -1, withscores=True) for index in INDEXES}
    assert rebuilt == built
    assert not r.hexists(keys.meta("default"), "migration_0003_phase")
    assert [m.number for m in migrate(r, "default")] == []
