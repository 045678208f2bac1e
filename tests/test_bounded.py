"""Bounded over time (issue 16): every key has an owner and an end, direct tasks never wait
forever, dead letters own their task records, the reaper reads indexes of what is due."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import redis

import agentfn
from agentfn.constants import LIMITS
from agentfn.library.migrate import list_migrations, migrate
from agentfn.library.paths import migrations_dir

from .helpers import ROOT, assert_refused, fcall, pairs, secret_of, server_ms, wait_until
from .tasks_helpers import (
    claim,
    complete,
    fail,
    get,
    reap,
    register,
    submit,
)
from .workflows_helpers import create, wf_get

QUEUE = f"{ROOT}:queue"


def deregister(r: redis.Redis, agent_id: str) -> None:
    fcall(r, "agentfn_agent_deregister", agent_id, secret_of(agent_id))


def consumers(r: redis.Redis, stream: str) -> list[str]:
    return [c["name"] for c in r.xinfo_consumers(stream, "agentfn")]


def lapse(r: redis.Redis, agent_id: str) -> None:
    """Make a live agent lapse: a heartbeat with a 1 ms TTL, then wait for the server clock."""
    record = pairs(
        fcall(r, "agentfn_agent_heartbeat", agent_id, secret_of(agent_id), "TTL_MS", "1")
    )
    wait_until(r, int(record["expires_ms"]))


def test_a_capability_stream_goes_when_its_last_agent_leaves(deployed):
    register(deployed, "a1", "x")
    submit(deployed, "x")
    [task] = claim(deployed, "a1")["tasks"]
    complete(deployed, task["id"], task["token"])
    stream = f"{QUEUE}:x:normal"
    assert deployed.zscore(f"{ROOT}:trim", stream) is not None  # an attempt ended there
    reap(deployed)  # trimmed; a1 is live and reads it: kept
    assert deployed.exists(stream) and deployed.xlen(stream) == 0
    assert deployed.zcard(f"{ROOT}:trim") == 0
    deregister(deployed, "a1")
    assert not deployed.exists(stream) or consumers(deployed, stream) == []
    counters = reap(deployed)
    assert counters["deleted_streams"] == 1
    assert not deployed.exists(stream) and not deployed.exists(f"{ROOT}:streams")
    assert not deployed.exists(f"{ROOT}:trim")


def test_a_stream_with_undelivered_tasks_is_kept(deployed):
    register(deployed, "a1", "x")
    submit(deployed, "x")
    submit(deployed, "x")
    [task] = claim(deployed, "a1")["tasks"]
    complete(deployed, task["id"], task["token"])
    deregister(deployed, "a1")
    assert reap(deployed)["deleted_streams"] == 0
    assert deployed.xlen(f"{QUEUE}:x:normal") == 1  # the undelivered one, live work


def test_consumers_leave_when_the_capability_is_dropped(deployed):
    register(deployed, "a1", "x,y")
    submit(deployed, "x")
    submit(deployed, "y")
    held = {t["capability"]: t for t in claim(deployed, "a1", "COUNT", "2")["tasks"]}
    complete(deployed, held["x"]["id"], held["x"]["token"])
    register(deployed, "a1", "z")  # drops x (nothing held) and y (holds a task)
    assert consumers(deployed, f"{QUEUE}:x:normal") == []
    assert consumers(deployed, f"{QUEUE}:y:normal") == ["a1"]
    assert deployed.hget(f"{ROOT}:agent:a1", "lingering") == "y"
    complete(deployed, held["y"]["id"], held["y"]["token"])
    register(deployed, "a1", "z")  # y no longer held: the consumer leaves now
    assert consumers(deployed, f"{QUEUE}:y:normal") == []
    assert deployed.hget(f"{ROOT}:agent:a1", "lingering") == ""


def test_a_lingering_consumer_leaves_when_its_agent_deregisters(deployed):
    register(deployed, "a1", "y")
    submit(deployed, "y")
    [task] = claim(deployed, "a1")["tasks"]
    register(deployed, "a1", "z")
    assert consumers(deployed, f"{QUEUE}:y:normal") == ["a1"]
    deregister(deployed, "a1")
    assert consumers(deployed, f"{QUEUE}:y:normal") == []
    assert get(deployed, task["id"])["state"] == "queued"  # handed back


def test_direct_tasks_of_a_departed_agent_are_dead_lettered_after_their_grace(deployed):
    register(deployed, "a1", "")
    held = submit(deployed, "x", "{}", "TO", "a1", "GRACE_MS", "0")["id"]
    waiting = submit(deployed, "x", "{}", "TO", "a1", "GRACE_MS", "0")["id"]
    patient = submit(deployed, "x", "{}", "TO", "a1", "GRACE_MS", "3600000")["id"]
    [task] = claim(deployed, "a1")["tasks"]
    assert task["id"] == held
    deregister(deployed, "a1")
    assert get(deployed, held)["state"] == "queued"
    counters = reap(deployed)
    assert counters["orphaned"] == 2
    for task_id in (held, waiting):
        record = get(deployed, task_id)
        assert record["state"] == "dead" and record["error"] == "agent gone"
        assert record["grace_ms"] == "0"
    assert get(deployed, patient)["state"] == "queued"
    # checked again when the patient one's grace ends, not before
    assert deployed.zscore(f"{ROOT}:orphans", "a1") >= server_ms(deployed) + 3_500_000
    # cancel it: the direct stream then holds nothing, and goes at the next check
    fcall(deployed, "agentfn_task_cancel", patient)
    deployed.zadd(f"{ROOT}:orphans", {"a1": 0})
    reap(deployed)
    assert not deployed.exists(f"{ROOT}:direct:a1")
    assert not deployed.exists(f"{ROOT}:orphans") and not deployed.exists(f"{ROOT}:orphans-since")
    assert deployed.smembers(f"{ROOT}:streams") == set()


def test_an_agent_back_within_the_grace_gets_its_direct_tasks(deployed):
    register(deployed, "a1", "")
    task_id = submit(deployed, "x", "{}", "TO", "a1")["id"]
    lapse(deployed, "a1")
    reap(deployed)  # a1 lapsed: its direct stream is watched
    assert deployed.hget(f"{ROOT}:agent:a1", "status") == "lapsed"
    assert deployed.zscore(f"{ROOT}:orphans", "a1") is not None
    register(deployed, "a1", "")
    assert not deployed.exists(f"{ROOT}:orphans")
    assert [t["id"] for t in claim(deployed, "a1")["tasks"]] == [task_id]


def test_a_task_submitted_to_a_lapsed_agent_ends_by_the_policy(deployed):
    register(deployed, "a1", "")
    lapse(deployed, "a1")
    reap(deployed)
    task_id = submit(deployed, "x", "{}", "TO", "a1", "GRACE_MS", "0")["id"]
    assert reap(deployed)["orphaned"] == 1
    assert get(deployed, task_id)["error"] == "agent gone"


def test_grace_needs_to(deployed, raw):
    before = {key: raw.dump(key) for key in raw.keys("*")}
    try:
        submit(deployed, "x", "{}", "GRACE_MS", "5")
    except redis.ResponseError as error:
        assert str(error).startswith("BADARG")
    else:
        raise AssertionError("GRACE_MS without TO was accepted")
    assert {key: raw.dump(key) for key in raw.keys("*")} == before


def test_a_dead_task_lives_exactly_as_long_as_its_dead_letter(deployed):
    register(deployed, "a1", "x")
    task_id = submit(
        deployed, "x", "{}", "MAX_ATTEMPTS", "1", "RETENTION_MS", "1", "IDEMPOTENCY_KEY", "k"
    )["id"]
    [task] = claim(deployed, "a1")["tasks"]
    fail(deployed, task_id, task["token"])
    record = get(deployed, task_id)
    assert record["state"] == "dead"
    key = f"{ROOT}:task:{task_id}"
    assert deployed.pttl(key) == -1 and deployed.pttl(f"{ROOT}:idem:k") == -1  # owned by the entry
    deployed.hset(f"{ROOT}:meta", "dead_retention_ms", "0")
    wait_until(deployed, int(record["entry"].split("-")[0]) + 1)  # the letter's id is its time
    assert reap(deployed)["trimmed"] == 1
    assert not deployed.exists(key, f"{ROOT}:idem:k", f"{ROOT}:dead")


def test_a_requeued_dead_task_outlives_its_dead_letter(deployed):
    deployed.hset(f"{ROOT}:meta", "dead_retention_ms", "0")
    register(deployed, "a1", "x")
    task_id = submit(deployed, "x", "{}", "MAX_ATTEMPTS", "1")["id"]
    [task] = claim(deployed, "a1")["tasks"]
    fail(deployed, task_id, task["token"])
    record = get(deployed, task_id)
    fcall(deployed, "agentfn_task_requeue", task_id)
    wait_until(deployed, int(record["finished_ms"]))
    assert reap(deployed)["trimmed"] == 0  # requeue removed the dead letter
    assert get(deployed, task_id)["state"] == "queued"


def test_lapsed_agent_records_follow_the_namespace_retention(deployed):
    deployed.hset(f"{ROOT}:meta", "agent_retention_ms", "60000")
    register(deployed, "a1", "x")
    register(deployed, "a2", "x")
    lapse(deployed, "a1")
    reap(deployed)
    assert 0 < deployed.pttl(f"{ROOT}:agent:a1") <= 60_000
    deployed.hset(f"{ROOT}:meta", "agent_retention_ms", "0")
    lapse(deployed, "a2")
    reap(deployed)
    assert not deployed.exists(f"{ROOT}:agent:a2")


def test_the_reaper_visits_only_the_streams_of_the_trim_index(deployed):
    for n in range(50):
        deployed.xgroup_create(f"{QUEUE}:old{n}:normal", "agentfn", "0", mkstream=True)
        deployed.sadd(f"{ROOT}:streams", f"{QUEUE}:old{n}:normal")
    deployed.config_resetstat()
    reap(deployed)
    stats = deployed.info("commandstats")
    assert "cmdstat_xinfo|groups" not in stats and "cmdstat_xtrim" not in stats
    assert deployed.scard(f"{ROOT}:streams") == 50


def test_migration_0002_indexes_existing_streams_and_keeps_dead_tasks(r):
    """A namespace at schema 1 with streams and a dead task whose record expires: after the
    migration the reaper visits (and deletes) the unused streams, and the record is kept."""
    directory = migrations_dir()
    before = [m for m in list_migrations(directory) if m.number < 2]
    with tempfile.TemporaryDirectory() as tmp:
        for m in before:
            shutil.copy(m.path, Path(tmp) / m.path.name)
        migrate(r, "default", Path(tmp))
    for n in range(1200):  # more than a batch
        r.xgroup_create(f"{QUEUE}:old{n}:normal", "agentfn", "0", mkstream=True)
        r.sadd(f"{ROOT}:streams", f"{QUEUE}:old{n}:normal")
    r.hset(f"{ROOT}:task:t1", mapping={"state": "dead", "entry": "5-0"})
    r.pexpire(f"{ROOT}:task:t1", 600_000)
    r.xadd(f"{ROOT}:dead", {"task": "t1"}, id="5-0")
    agentfn.deploy(r, "default")
    assert r.zcard(f"{ROOT}:trim") == 1200 and r.pttl(f"{ROOT}:task:t1") == -1
    assert not r.hexists(f"{ROOT}:meta", "migration_0002_phase")
    while reap(r)["deleted_streams"]:
        pass
    assert r.scard(f"{ROOT}:streams") == 0


def test_a_broadcast_beyond_its_recipient_limit_is_refused_unchanged(deployed, raw):
    limit = LIMITS["broadcast_recipients"]
    pipe = deployed.pipeline(transaction=False)
    for n in range(limit + 1):
        pipe.execute_command(
            "FCALL", "agentfn_agent_register", 1, ROOT, f"b{n}", secret_of(f"b{n}"), "x"
        )
    pipe.execute()
    assert_refused(deployed, raw, "LIMIT", "agentfn_msg_broadcast", "s", "x", "t", "{}")
    # the sender is left out: from one of them, exactly the limit is reached
    reply = pairs(fcall(deployed, "agentfn_msg_broadcast", "b0", "x", "t", "{}"))
    assert len(reply["reached"]) == 2 * limit


def test_wf_get_pages_steps_in_definition_order(deployed):
    ids = [f"s{n}" for n in range(7)]
    create(deployed, {"steps": [{"id": i, "capability": "x"} for i in ids]})
    summary, page = wf_get(deployed, "w1", "OFFSET", "2", "COUNT", "3")
    assert list(page) == ids[2:5] and summary["step_count"] == "7"
    assert list(wf_get(deployed, "w1", "OFFSET", "6", "COUNT", "3")[1]) == ids[6:]
    assert list(wf_get(deployed, "w1")[1]) == ids


def test_context_documents_are_bounded(deployed, raw):
    big = json.dumps({"blob": "x" * LIMITS["context_bytes"]})
    step = json.dumps({"steps": [{"id": "s", "capability": "x"}]})
    assert_refused(deployed, raw, "LIMIT", "agentfn_wf_create", step, "CONTEXT", big)
    create(deployed, json.loads(step))
    assert_refused(deployed, raw, "LIMIT", "agentfn_ctx_set", "w1", big)


def test_a_deregistering_agent_hands_back_a_batch_the_rest_with_their_leases(deployed):
    held = LIMITS["release_batch"] + 5
    register(deployed, "a1", "x")
    pipe = deployed.pipeline(transaction=False)
    for _ in range(held):
        pipe.execute_command("FCALL", "agentfn_task_submit", 1, ROOT, "x", "{}", "TIMEOUT_MS", "1")
    pipe.execute()
    claimed = 0
    while claimed < held:
        claimed += len(claim(deployed, "a1", "COUNT", str(LIMITS["claim_count"]))["tasks"])
    released = pairs(fcall(deployed, "agentfn_agent_deregister", "a1", secret_of("a1")))
    assert released["released"] == LIMITS["release_batch"]
    wait_until(deployed, server_ms(deployed) + 2)
    assert reap(deployed)["expired_leases"] == 5  # the rest came back when their leases ended
    assert deployed.zcard(f"{ROOT}:leases") == 0


def test_protocol_lists_every_bounding_limit_with_its_value():
    text = (Path(__file__).parent.parent / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    table = text.split("## Bounded calls", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([\d,]+)( KiB)? \|", table, flags=re.M)
    assert len(rows) >= 10
    for name, value, kib in rows:
        number = int(value.replace(",", "")) * (1024 if kib else 1)
        assert LIMITS[name] == number, name
