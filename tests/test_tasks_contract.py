"""Contract tests: the task functions called with raw FCALL, as any language would."""

from __future__ import annotations

import json
import threading

import pytest
import redis

from agentfn.client.status import read_agents
from agentfn.constants import DEFAULTS

from .helpers import ROOT, assert_refused, fcall, pairs, secret_of, server_ms, wait_until
from .secret_helpers import claim_token, token_of
from .tasks_helpers import (
    claim,
    claim_reply,
    claimed_ids,
    complete,
    fail,
    get,
    held,
    reap,
    register,
    submit,
)

QUEUE = f"{ROOT}:queue"


def test_submit_claim_complete_lifecycle(deployed):
    register(deployed, "a1", "web_search")
    before = server_ms(deployed)
    submitted = submit(deployed, "web_search", '{"q":"redis"}', "TIMEOUT_MS", "5000")
    assert submitted == {"id": "t1", "state": "queued", "created": 1}
    reply = claim(deployed, "a1")
    assert reply["wait"] == {} and reply["next_due_ms"] == ""
    [task] = reply["tasks"]
    assert (
        task["id"] == "t1"
        and task["capability"] == "web_search"
        and task["payload"] == '{"q":"redis"}'
    )
    assert task["attempt"] == "1" and task["priority"] == "normal"
    assert task["token"] == token_of("t1", 1)  # 1-sha1(secret:t1:1): only the claimer knows it
    assert task["workflow"] == task["step"] == task["inputs"] == "" and task["timeout_ms"] == "5000"
    deadline = int(task["lease_deadline_ms"])
    assert before + 5000 <= deadline <= server_ms(deployed) + 5000
    record = get(deployed, "t1")
    assert record["state"] == "running" and record["agent"] == "a1" and record["attempt"] == "1"
    assert deployed.zscore(f"{ROOT}:leases", "t1") == deadline
    assert held(deployed, "a1") == ["t1"]

    assert complete(deployed, "t1", token_of("t1", 1), '{"answer":42}') == {
        "id": "t1",
        "state": "completed",
    }
    record = get(deployed, "t1")
    assert record["state"] == "completed" and record["result"] == '{"answer":42}'
    assert int(record["finished_ms"]) >= int(record["started_ms"])
    assert 0 < deployed.pttl(f"{ROOT}:task:t1") <= 86_400_000
    assert deployed.zcard(f"{ROOT}:leases") == 0 and held(deployed, "a1") == []
    assert deployed.xpending(f"{QUEUE}:web_search:normal", "agentfn")["pending"] == 0
    assert deployed.xlen(f"{QUEUE}:web_search:normal") == 1  # acknowledged: the next reap trims it
    reap(deployed)
    assert deployed.xlen(f"{QUEUE}:web_search:normal") == 0
    kinds = [
        fields["type"]
        for _, fields in deployed.xrange(f"{ROOT}:events")
        if fields["type"].startswith("task.")
    ]
    assert kinds == ["task.submitted", "task.running", "task.completed"]


def test_every_task_hash_field_is_returned_by_get(deployed):
    register(deployed, "a1", "x")
    submit(
        deployed, "x", "[1]", "IDEMPOTENCY_KEY", "k1", "RETENTION_MS", "1000", "MAX_ATTEMPTS", "2"
    )
    record = get(deployed, "t1")
    assert list(record) == [
        "id",
        "capability",
        "payload",
        "priority",
        "state",
        "attempt",
        "max_attempts",
        "backoff_ms",
        "backoff_max_ms",
        "timeout_ms",
        "created_ms",
        "due_ms",
        "started_ms",
        "finished_ms",
        "agent",
        "stream",
        "entry",
        "lease_deadline_ms",
        "result",
        "error",
        "errors",
        "to",
        "idempotency_key",
        "workflow",
        "step",
        "inputs",
        "prompt",
        "retention_ms",
        "cancel_requested",
        "traceparent",
        "grace_ms",
    ]
    assert record["idempotency_key"] == "k1" and record["retention_ms"] == "1000"
    assert record["max_attempts"] == "2" and record["attempt"] == "0"
    assert (
        record["stream"] == f"{QUEUE}:x:normal"
        and record["entry"] == deployed.xrange(record["stream"])[0][0]
    )
    assert set(deployed.hgetall(f"{ROOT}:task:t1")) <= set(record)


def test_priority_order_then_age(deployed):
    register(deployed, "a1", "x")
    submit(deployed, "x", "1", "PRIORITY", "low")
    submit(deployed, "x", "2")
    submit(deployed, "x", "3", "PRIORITY", "high")
    submit(deployed, "x", "4")
    submit(deployed, "x", "5", "PRIORITY", "high")
    assert claimed_ids(deployed, "a1", "COUNT", "10") == ["t3", "t5", "t2", "t4", "t1"]


def test_several_capabilities_take_the_oldest_entry_within_a_priority(deployed):
    """Entry ids are milliseconds: each submit lands in its own millisecond so that age decides."""
    register(deployed, "a1", "x,y,z")
    for capability, payload, *options in [
        ("y", "1"),
        ("x", "2"),
        ("y", "3"),
        ("z", "4", "PRIORITY", "low"),
        ("z", "5"),
        ("x", "6", "PRIORITY", "high"),
    ]:
        submit(deployed, capability, payload, *options)
        wait_until(deployed, server_ms(deployed) + 1)
    assert claimed_ids(deployed, "a1") == ["t6"]
    assert claimed_ids(deployed, "a1", "COUNT", "2") == ["t1", "t2"]
    assert claimed_ids(deployed, "a1", "COUNT", "10") == ["t3", "t5", "t4"]


def test_a_claim_learns_which_streams_exist_in_one_read(deployed):
    """One SMISMEMBER of the work streams index instead of an EXISTS per stream; a stream deleted
    (or its group destroyed) outside the library is read as empty, not as an error."""
    register(deployed, "a1", "x,y")
    for capability, priority in [("x", "low"), ("y", "low"), ("x", "high"), ("y", "normal")]:
        submit(deployed, capability, "1", "PRIORITY", priority)
    deployed.config_resetstat()
    assert claimed_ids(deployed, "a1", "COUNT", "10") == ["t3", "t4", "t1", "t2"]
    stats = deployed.info("commandstats")
    assert stats["cmdstat_smismember"]["calls"] == 1
    # Several capabilities peek at each listed stream (EXISTS, XINFO GROUPS): 4 of the 6 exist.
    assert stats["cmdstat_exists"]["calls"] == 4
    submit(deployed, "x", "2")
    submit(deployed, "y", "3", "PRIORITY", "high")
    deployed.delete(f"{QUEUE}:x:normal")  # still listed in the index: deleted by hand
    deployed.xgroup_destroy(f"{QUEUE}:y:high", "agentfn")
    register(deployed, "a2", "x")
    assert claimed_ids(deployed, "a2") == []
    assert claimed_ids(deployed, "a1") == []


def test_direct_tasks_come_first_and_only_to_their_agent(deployed, raw):
    register(deployed, "a1", "x")
    register(deployed, "a2", "x")
    submit(deployed, "x", "1", "PRIORITY", "high")
    direct = submit(deployed, "x", "2", "TO", "a2", "PRIORITY", "low")
    assert get(deployed, direct["id"])["stream"] == f"{ROOT}:direct:a2"
    assert claimed_ids(deployed, "a1", "COUNT", "5") == ["t1"]
    assert claimed_ids(deployed, "a2", "COUNT", "5") == ["t2"]


def test_agent_without_capabilities_takes_direct_tasks(deployed):
    register(deployed, "solo", "")
    submit(deployed, "anything", "{}", "TO", "solo")
    assert claimed_ids(deployed, "solo") == ["t1"]
    assert list(claim(deployed, "solo")["wait"]) == [f"{ROOT}:direct:solo", f"{ROOT}:delayed-wake"]


def test_claim_needs_a_live_registered_agent(deployed, raw):
    with pytest.raises(redis.ResponseError, match="^NOTFOUND"):
        fcall(deployed, "agentfn_task_claim", "ghost", secret_of("ghost"))
    register(deployed, "short", "x", "TTL_MS", "20")
    wait_until(deployed, server_ms(deployed) + 25)
    with pytest.raises(redis.ResponseError, match="^LAPSED"):
        fcall(deployed, "agentfn_task_claim", "short", secret_of("short"))


def test_delayed_task_is_claimable_only_when_due_on_the_server_clock(deployed):
    register(deployed, "a1", "x")
    submit(deployed, "x", "1", "DELAY_MS", "400")
    record = get(deployed, "t1")
    assert record["state"] == "delayed" and record["entry"] == ""
    due = int(record["due_ms"])
    assert deployed.zscore(f"{ROOT}:delayed", "t1") == due
    empty = claim(deployed, "a1")
    assert empty["tasks"] == [] and int(empty["next_due_ms"]) == due
    assert empty["wait"][f"{QUEUE}:x:normal"] == "0-0"
    wait_until(deployed, due)
    assert claimed_ids(deployed, "a1") == ["t1"]
    assert deployed.zcard(f"{ROOT}:delayed") == 0


def test_retry_backoff_grows_exponentially_and_is_capped(deployed):
    register(deployed, "a1", "x")
    submit(deployed, "x", "1", "MAX_ATTEMPTS", "5", "BACKOFF_MS", "40", "BACKOFF_MAX_MS", "100")
    delays = []
    [task] = claim(deployed, "a1")["tasks"]
    for attempt in range(1, 5):
        assert task["token"] == token_of("t1", attempt)
        reply = fail(deployed, "t1", token_of("t1", attempt), f"error {attempt}")
        assert reply["state"] == "delayed"
        failed_at = json.loads(get(deployed, "t1")["errors"])[-1]["at_ms"]
        delays.append(int(reply["due_ms"]) - failed_at)
        again = claim(deployed, "a1")["tasks"]
        assert again == [] or server_ms(deployed) >= int(reply["due_ms"])  # never before it is due
        if not again:
            wait_until(deployed, int(reply["due_ms"]))
            again = claim(deployed, "a1")["tasks"]
        [task] = again
    assert delays == [40, 80, 100, 100]
    assert fail(deployed, "t1", token_of("t1", 5), "last")["state"] == "dead"
    errors = json.loads(get(deployed, "t1")["errors"])
    assert [(e["attempt"], e["error"], e["agent"]) for e in errors] == [
        (1, "error 1", "a1"),
        (2, "error 2", "a1"),
        (3, "error 3", "a1"),
        (4, "error 4", "a1"),
        (5, "last", "a1"),
    ]


def test_fail_without_backoff_queues_at_once_and_retry_no_fails_for_good(deployed):
    register(deployed, "a1", "x")
    submit(deployed, "x", "1", "BACKOFF_MS", "0")
    claim(deployed, "a1")
    reply = fail(deployed, "t1", token_of("t1", 1), "flaky")
    assert reply["state"] == "queued"
    assert claimed_ids(deployed, "a1") == ["t1"]
    assert fail(deployed, "t1", token_of("t1", 2), "hopeless", "RETRY", "no") == {
        "id": "t1",
        "state": "failed",
        "due_ms": "",
        "attempt": "2",
        "max_attempts": "3",
    }
    record = get(deployed, "t1")
    assert record["state"] == "failed" and record["error"] == "hopeless"
    assert deployed.xlen(f"{ROOT}:dead") == 0
    assert deployed.pttl(f"{ROOT}:task:t1") > 0


def test_idempotency_key_returns_the_same_task(deployed):
    first = submit(deployed, "x", "1", "IDEMPOTENCY_KEY", "order-7")
    again = submit(deployed, "x", "2", "IDEMPOTENCY_KEY", "order-7", "PRIORITY", "high")
    assert first == {"id": "t1", "state": "queued", "created": 1}
    assert again == {"id": "t1", "state": "queued", "created": 0}
    assert deployed.xlen(f"{QUEUE}:x:normal") == 1 and not deployed.exists(f"{QUEUE}:x:high")
    assert deployed.get(f"{ROOT}:idem:order-7") == "t1"
    # The key lives as long as the task: it expires with the finished task.
    register(deployed, "a1", "x")
    claim(deployed, "a1")
    complete(deployed, "t1", token_of("t1", 1))
    assert submit(deployed, "x", "3", "IDEMPOTENCY_KEY", "order-7") == {
        "id": "t1",
        "state": "completed",
        "created": 0,
    }
    assert 0 < deployed.pttl(f"{ROOT}:idem:order-7") <= deployed.pttl(f"{ROOT}:task:t1") + 5
    # Once the task is gone the key names a new task.
    deployed.delete(f"{ROOT}:task:t1")
    assert submit(deployed, "x", "4", "IDEMPOTENCY_KEY", "order-7")["id"] == "t2"


def test_cancel_queued_delayed_running_and_finished(deployed, raw):
    register(deployed, "a1", "x")
    submit(deployed, "x", "1")
    submit(deployed, "x", "2", "DELAY_MS", "60000")
    submit(deployed, "x", "3")
    assert pairs(fcall(deployed, "agentfn_task_cancel", "t1")) == {
        "id": "t1",
        "state": "canceled",
        "was": "queued",
    }
    assert pairs(fcall(deployed, "agentfn_task_cancel", "t2"))["was"] == "delayed"
    assert deployed.zcard(f"{ROOT}:delayed") == 0
    assert claimed_ids(deployed, "a1") == ["t3"]
    assert pairs(fcall(deployed, "agentfn_task_cancel", "t3"))["was"] == "running"
    record = get(deployed, "t3")
    assert record["state"] == "canceled" and record["cancel_requested"] == "1"
    reap(deployed)
    assert deployed.zcard(f"{ROOT}:leases") == 0 and deployed.xlen(f"{QUEUE}:x:normal") == 0
    # The worker learns at its next extend, complete or fail; its result is discarded.
    assert pairs(fcall(deployed, "agentfn_task_extend", "t3", token_of("t3", 1)))["canceled"] == 1
    assert complete(deployed, "t3", token_of("t3", 1), '"late"') == {
        "id": "t3",
        "state": "canceled",
    }
    assert fail(deployed, "t3", token_of("t3", 1))["state"] == "canceled"
    assert get(deployed, "t3")["result"] == ""
    for task_id in ("t1", "t2", "t3"):
        assert get(deployed, task_id)["state"] == "canceled"
        assert deployed.pttl(f"{ROOT}:task:{task_id}") > 0
    assert claim(deployed, "a1")["tasks"] == []
    for task_id in ("t1", "t3"):
        message = assert_state_refused(deployed, raw, task_id)
        assert "canceled" in message
    submit(deployed, "x", "4")
    claim(deployed, "a1")
    complete(deployed, "t4", token_of("t4", 1))
    assert "completed" in assert_state_refused(deployed, raw, "t4")
    kinds = [
        f["type"] for _, f in deployed.xrange(f"{ROOT}:events") if f["type"] == "task.canceled"
    ]
    assert len(kinds) == 3


def assert_state_refused(r, raw, task_id):
    return assert_refused(r, raw, "STATE", "agentfn_task_cancel", task_id)


def test_canceled_entry_in_a_stream_is_skipped(deployed):
    """An entry whose task is gone or no longer queued is acknowledged, deleted and skipped."""
    register(deployed, "a1", "x")
    submit(deployed, "x", "1")
    submit(deployed, "x", "2")
    deployed.delete(f"{ROOT}:task:t1")
    assert claimed_ids(deployed, "a1", "COUNT", "5") == ["t2"]
    assert deployed.xlen(f"{QUEUE}:x:normal") == 1
    assert deployed.xpending(f"{QUEUE}:x:normal", "agentfn")["pending"] == 1


def test_stale_completion_is_refused_and_changes_nothing(deployed, raw):
    register(deployed, "a1", "x")
    submit(deployed, "x", "1", "BACKOFF_MS", "0")
    claim(deployed, "a1")
    fail(deployed, "t1", token_of("t1", 1))
    claim(deployed, "a1")
    message = assert_refused(
        deployed, raw, "STALE", "agentfn_task_complete", "t1", token_of("t1", 1), '"late"'
    )
    assert "attempt 2" in message
    assert_refused(deployed, raw, "STALE", "agentfn_task_fail", "t1", token_of("t1", 1), "late")
    assert_refused(deployed, raw, "STALE", "agentfn_task_extend", "t1", token_of("t1", 1))
    assert_refused(
        deployed, raw, "STALE", "agentfn_task_complete", "t1", token_of("t1", 3), '"future"'
    )
    complete(deployed, "t1", token_of("t1", 2), '"fresh"')
    assert_refused(
        deployed, raw, "STALE", "agentfn_task_complete", "t1", token_of("t1", 2), '"twice"'
    )
    assert get(deployed, "t1")["result"] == '"fresh"'


def test_extend_renews_the_lease_on_the_server_clock(deployed):
    register(deployed, "a1", "x")
    submit(deployed, "x", "1", "TIMEOUT_MS", "1000")
    first = int(claim(deployed, "a1")["tasks"][0]["lease_deadline_ms"])
    before = server_ms(deployed)
    reply = pairs(
        fcall(deployed, "agentfn_task_extend", "t1", token_of("t1", 1), "LEASE_MS", "60000")
    )
    assert reply["canceled"] == 0 and int(reply["lease_deadline_ms"]) >= before + 60000 > first
    assert deployed.zscore(f"{ROOT}:leases", "t1") == int(reply["lease_deadline_ms"])
    default = pairs(fcall(deployed, "agentfn_task_extend", "t1", token_of("t1", 1)))
    assert int(default["lease_deadline_ms"]) < int(reply["lease_deadline_ms"])
    assert int(get(deployed, "t1")["lease_deadline_ms"]) == int(default["lease_deadline_ms"])


def test_claim_lease_option_overrides_the_timeout(deployed):
    register(deployed, "a1", "x")
    submit(deployed, "x", "1", "TIMEOUT_MS", "1000")
    before = server_ms(deployed)
    [task] = claim(deployed, "a1", "LEASE_MS", "90000")["tasks"]
    assert int(task["lease_deadline_ms"]) >= before + 90000


def test_dead_letter_and_requeue(deployed, raw):
    register(deployed, "a1", "x")
    submit(deployed, "x", '{"n":1}', "MAX_ATTEMPTS", "1")
    claim(deployed, "a1")
    assert fail(deployed, "t1", token_of("t1", 1), "broken")["state"] == "dead"
    [(entry_id, letter)] = deployed.xrange(f"{ROOT}:dead")
    assert letter["task"] == "t1" and letter["capability"] == "x" and letter["attempts"] == "1"
    assert letter["error"] == "broken" and json.loads(letter["errors"])[0]["error"] == "broken"
    record = get(deployed, "t1")
    assert record["state"] == "dead" and record["entry"] == entry_id
    assert claim(deployed, "a1")["tasks"] == []

    assert pairs(fcall(deployed, "agentfn_task_requeue", "t1", "MAX_ATTEMPTS", "2")) == {
        "id": "t1",
        "state": "queued",
    }
    assert deployed.xlen(f"{ROOT}:dead") == 0
    assert deployed.pttl(f"{ROOT}:task:t1") == -1
    record = get(deployed, "t1")
    assert (
        record["max_attempts"] == "3" and record["attempt"] == "1" and record["finished_ms"] == ""
    )
    [task] = claim(deployed, "a1")["tasks"]
    assert task["token"] == token_of("t1", 2)
    assert_refused(deployed, raw, "STATE", "agentfn_task_requeue", "t1")
    fail(deployed, "t1", token_of("t1", 2), "again", "RETRY", "no")
    assert fcall(deployed, "agentfn_task_requeue", "t1")[3] == "queued"
    assert get(deployed, "t1")["max_attempts"] == "5"


def test_reap_expired_lease_redelivers_as_attempt_two_and_records_one_completion(deployed, raw):
    register(deployed, "a1", "x")
    register(deployed, "a2", "x")
    submit(deployed, "x", "1", "TIMEOUT_MS", "30")
    [first] = claim(deployed, "a1")["tasks"]
    wait_until(deployed, int(first["lease_deadline_ms"]))
    counters = reap(deployed)
    assert counters == {
        "expired_leases": 1,
        "requeued": 1,
        "dead_lettered": 0,
        "promoted": 0,
        "lapsed_agents": 0,
        "released": 0,
        "expired_messages": 0,
        "trimmed": 0,
        "orphaned": 0,
        "deleted_streams": 0,
        "pruned": 0,
    }
    record = get(deployed, "t1")
    assert (
        record["state"] == "queued" and json.loads(record["errors"])[0]["error"] == "lease expired"
    )
    [second] = claim(deployed, "a2")["tasks"]
    assert second["attempt"] == "2" and second["token"] == token_of("t1", 2, "a2")
    assert_refused(
        deployed, raw, "STALE", "agentfn_task_complete", "t1", token_of("t1", 1), '"from a1"'
    )
    complete(deployed, "t1", second["token"], '"from a2"')
    completions = [f for _, f in deployed.xrange(f"{ROOT}:events") if f["type"] == "task.completed"]
    assert len(completions) == 1 and get(deployed, "t1")["result"] == '"from a2"'
    assert reap(deployed)["expired_leases"] == 0


def test_reap_dead_letters_an_expired_lease_out_of_attempts_and_promotes(deployed):
    register(deployed, "a1", "x")
    submit(deployed, "x", "1", "TIMEOUT_MS", "20", "MAX_ATTEMPTS", "1")
    submit(deployed, "x", "2", "DELAY_MS", "20")
    [task] = claim(deployed, "a1")["tasks"]
    wait_until(deployed, max(int(task["lease_deadline_ms"]), int(get(deployed, "t2")["due_ms"])))
    counters = reap(deployed, "LIMIT", "10")
    assert (
        counters["expired_leases"] == 1
        and counters["dead_lettered"] == 1
        and counters["promoted"] == 1
    )
    assert get(deployed, "t1")["state"] == "dead" and get(deployed, "t2")["state"] == "queued"


def test_deregister_releases_held_tasks_at_once(deployed):
    register(deployed, "a1", "x")
    register(deployed, "a2", "x")
    submit(deployed, "x", "1")
    submit(deployed, "x", "2", "MAX_ATTEMPTS", "1")
    assert claimed_ids(deployed, "a1", "COUNT", "2") == ["t1", "t2"]
    assert pairs(fcall(deployed, "agentfn_agent_deregister", "a1", secret_of("a1"))) == {
        "agent": "a1",
        "released": 2,
    }
    assert get(deployed, "t1")["state"] == "queued"
    assert get(deployed, "t2")["state"] == "dead"
    assert json.loads(get(deployed, "t1")["errors"])[0]["error"] == "agent a1 deregistered"
    assert held(deployed, "a1") == []
    assert deployed.zcard(f"{ROOT}:leases") == 0
    assert [c["name"] for c in deployed.xinfo_consumers(f"{QUEUE}:x:normal", "agentfn")] == []
    [task] = claim(deployed, "a2")["tasks"]
    assert task["id"] == "t1" and task["token"] == token_of("t1", 2, "a2")
    assert deployed.xpending(f"{QUEUE}:x:normal", "agentfn")["pending"] == 1


def test_an_agent_holds_its_pending_entries_wherever_it_claimed(deployed):
    """What an agent holds is its consumer's pending entries (no set is kept beside them): a task
    claimed under a capability the agent has since dropped and a direct task are still counted
    by the status and released at once when the agent goes."""
    register(deployed, "a1", "x,y")
    submit(deployed, "x", "1")
    submit(deployed, "y", "2", "TO", "a1")
    assert claimed_ids(deployed, "a1", "COUNT", "2") == ["t2", "t1"]  # its direct stream first
    register(deployed, "a1", "y")  # drops x while it holds t1
    assert held(deployed, "a1") == ["t1", "t2"]
    [row] = read_agents(deployed, "default", server_ms(deployed))
    assert (row.id, row.running) == ("a1", 2)
    assert pairs(fcall(deployed, "agentfn_agent_deregister", "a1", secret_of("a1"))) == {
        "agent": "a1",
        "released": 2,
    }
    assert get(deployed, "t1")["state"] == get(deployed, "t2")["state"] == "queued"
    assert held(deployed, "a1") == [] and deployed.zcard(f"{ROOT}:leases") == 0


def test_lapsed_agent_tasks_are_released_by_reap(deployed):
    agent = register(deployed, "short", "x", "TTL_MS", "500")
    submit(deployed, "x", "1", "TIMEOUT_MS", "600000")
    claim(deployed, "short")
    wait_until(deployed, int(agent["expires_ms"]))
    counters = reap(deployed)
    assert (
        counters["lapsed_agents"] == 1
        and counters["released"] == 1
        and counters["expired_leases"] == 0
    )
    record = get(deployed, "t1")
    assert record["state"] == "queued" and record["error"] == "agent short lapsed"
    assert deployed.hget(f"{ROOT}:agent:short", "status") == "lapsed"


def test_complete_with_next_claims_in_the_same_call(deployed):
    register(deployed, "a1", "x")
    for n in range(3):
        submit(deployed, "x", str(n))
    [task] = claim(deployed, "a1")["tasks"]
    reply = pairs(
        fcall(deployed, "agentfn_task_complete", "t1", task["token"], '"ok"', "NEXT", "2")
    )
    assert reply["state"] == "completed"
    second, third = claim_reply(reply["next"])["tasks"]
    assert [second["id"], third["id"]] == ["t2", "t3"]
    # The tasks NEXT claims get tokens derived from the token presented (its holder's proof).
    assert second["token"] == claim_token(task["token"], "t2", 1)
    assert third["token"] == claim_token(task["token"], "t3", 1)
    reply = pairs(fcall(deployed, "agentfn_task_fail", "t2", second["token"], "x", "NEXT", "1"))
    nxt = claim_reply(reply["next"])
    assert (
        reply["state"] == "delayed" and nxt["tasks"] == [] and nxt["next_due_ms"] == reply["due_ms"]
    )
    assert list(nxt["wait"]) == [f"{ROOT}:direct:a1"] + [
        f"{QUEUE}:x:{p}" for p in ("high", "normal", "low")
    ] + [f"{ROOT}:delayed-wake"]
    assert "next" not in complete(deployed, "t3", third["token"], '"ok"', "NEXT", "0")


def test_next_refuses_a_lapsed_agent_before_writing(deployed, raw):
    agent = register(deployed, "a1", "x", "TTL_MS", "500")
    submit(deployed, "x", "1")
    claim(deployed, "a1")
    wait_until(deployed, int(agent["expires_ms"]))
    token = token_of("t1", 1)
    assert_refused(
        deployed, raw, "LAPSED", "agentfn_task_complete", "t1", token, '"ok"', "NEXT", "1"
    )
    assert complete(deployed, "t1", token)["state"] == "completed"


def test_input_required_only_for_workflow_tasks(deployed, raw):
    register(deployed, "a1", "x")
    submit(deployed, "x", "1")
    claim(deployed, "a1")
    assert_refused(
        deployed,
        raw,
        "BADARG",
        "agentfn_task_complete",
        "t1",
        token_of("t1", 1),
        "null",
        "INPUT_REQUIRED",
        '{"q":"?"}',
    )


def test_claim_empty_then_submit_wakes_xread_block_on_the_wait_ids(deployed, redis_url):
    """No lost wake-up: a task submitted between an empty claim and the XREAD still wakes it."""
    register(deployed, "a1", "x,y")
    submit(deployed, "x", "1")
    claim(deployed, "a1")  # the stream exists with a pending entry (ids must not wake on it)
    empty = claim(deployed, "a1")
    assert empty["tasks"] == []
    assert (
        empty["wait"][f"{QUEUE}:x:normal"]
        == deployed.xinfo_stream(f"{QUEUE}:x:normal")["last-generated-id"]
    )
    assert empty["wait"][f"{QUEUE}:y:low"] == "0-0"
    # Nothing new: XREAD with those ids times out (it does not wake on the pending entry).
    assert deployed.xread(empty["wait"], block=30) == []
    for late in ([("y", "2", "PRIORITY", "low")], [("x", "3")], [("z", "4", "TO", "a1")]):
        empty = claim(deployed, "a1")
        assert empty["tasks"] == []
        submit(deployed, *late[0])  # lands after the claim, before the XREAD
        woke = deployed.xread(empty["wait"], block=2000)
        assert woke, f"XREAD did not wake for {late}"
        assert len(claim(deployed, "a1")["tasks"]) == 1


def test_xread_block_wakes_when_a_task_is_submitted_while_blocked(deployed, redis_url):
    register(deployed, "a1", "x")
    empty = claim(deployed, "a1")
    blocker = redis.Redis.from_url(redis_url, decode_responses=True)
    woke = threading.Event()

    def block() -> None:
        if blocker.xread(empty["wait"], block=5000):
            woke.set()

    thread = threading.Thread(target=block)
    thread.start()
    # Wait until the reader is blocked (CLIENT LIST shows it), then submit.
    for _ in range(500):
        if any(c.get("cmd") == "xread" for c in deployed.client_list()):
            break
        deployed.blpop(["agentfn-test:never"], timeout=0.005)
    submit(deployed, "x", "1")
    thread.join(5)
    blocker.close()
    assert woke.is_set()


def test_reap_trims_streams_to_exactly_undelivered_and_pending_entries(deployed):
    """An ended attempt's entry is only acknowledged; agentfn_reap trims each work stream up to
    its oldest pending entry (else its first undelivered one), never past either."""
    register(deployed, "a1", "x")
    register(deployed, "a2", "x")
    for n in range(10):
        submit(deployed, "x", str(n), "BACKOFF_MS", "0")
    stream = f"{QUEUE}:x:normal"
    assert deployed.smembers(f"{ROOT}:streams") == {stream}
    tasks = claim(deployed, "a1", "COUNT", "4")["tasks"]
    others = claim(deployed, "a2", "COUNT", "2")["tasks"]
    complete(deployed, tasks[0]["id"], token_of(tasks[0]["id"], 1))
    fail(
        deployed, tasks[1]["id"], token_of(tasks[1]["id"], 1)
    )  # retried at once: a new undelivered entry
    fcall(deployed, "agentfn_task_cancel", tasks[2]["id"])
    fcall(deployed, "agentfn_task_cancel", "t10")  # queued: its undelivered entry goes at once
    assert (
        deployed.xlen(stream) == 10
    )  # 11 entries, one deleted; three acknowledged, not yet trimmed
    reap(deployed)
    pending = deployed.xpending_range(stream, "agentfn", "-", "+", 100)
    in_flight = {tasks[3]["id"], others[0]["id"], others[1]["id"]}
    assert {
        deployed.xrange(stream, p["message_id"], p["message_id"])[0][1]["task"] for p in pending
    } == in_flight
    undelivered = {
        get(deployed, f"t{n}")["id"]
        for n in range(1, 11)
        if get(deployed, f"t{n}")["state"] == "queued"
    }
    assert len(undelivered) == 4
    assert deployed.xlen(stream) == len(undelivered) + len(pending)
    assert {f["task"] for _, f in deployed.xrange(stream)} == undelivered | in_flight
    for task_id in in_flight:
        assert get(deployed, task_id)["entry"] in {p["message_id"] for p in pending}

    complete(
        deployed, others[0]["id"], others[0]["token"]
    )  # t5, between two pending entries (t4 and t6)
    reap(deployed)
    assert [f["task"] for _, f in deployed.xrange(stream)] == ["t4", "t6", "t7", "t8", "t9", "t2"]

    # Nothing pending: everything delivered goes, the undelivered stay (a direct stream too).
    for task in (others[1], tasks[3]):
        complete(deployed, task["id"], task["token"])
    reap(deployed)
    assert [f["task"] for _, f in deployed.xrange(stream)] == [
        "t7",
        "t8",
        "t9",
        "t2",
    ]  # t2's retry: last
    submit(deployed, "x", '"direct"', "TO", "a2")
    assert claimed_ids(deployed, "a2", "COUNT", "2") == ["t11", "t7"]
    complete(deployed, "t11", token_of("t11", 1, "a2"))
    reap(deployed)
    assert deployed.smembers(f"{ROOT}:streams") == {stream, f"{ROOT}:direct:a2"}
    assert deployed.xlen(f"{ROOT}:direct:a2") == 0
    assert [f["task"] for _, f in deployed.xrange(stream)] == ["t7", "t8", "t9", "t2"]  # t7 pending
    assert claimed_ids(deployed, "a1", "COUNT", "5") == ["t8", "t9", "t2"]
    for task_id in ("t8", "t9", "t2"):
        complete(deployed, task_id, token_of(task_id, 2 if task_id == "t2" else 1))
    # a budget of 2: the stream, then one entry after the oldest pending one (t7) at most
    reap(deployed, "LIMIT", "2")
    assert [f["task"] for _, f in deployed.xrange(stream)] == ["t7", "t9", "t2"]
    reap(deployed)  # attempts that ended while an older one runs on: deleted
    assert [f["task"] for _, f in deployed.xrange(stream)] == ["t7"]
    complete(deployed, "t7", token_of("t7", 1, "a2"))
    reap(deployed)
    assert deployed.xlen(stream) == 0
    assert deployed.xinfo_groups(stream)[0]["pending"] == 0
    # Delivery goes on from where it was; a stream of the trim index that is gone leaves the set.
    submit(deployed, "x", '"again"')
    assert claimed_ids(deployed, "a1") == ["t12"]
    deployed.delete(f"{ROOT}:direct:a2")
    deployed.zadd(f"{ROOT}:trim", {f"{ROOT}:direct:a2": 0})
    reap(deployed)
    assert deployed.smembers(f"{ROOT}:streams") == {stream}


def test_reap_trims_dead_letters_past_retention_only(deployed):
    old = server_ms(deployed) - 86_400_000 - 1000
    deployed.xadd(f"{ROOT}:dead", {"task": "t-old"}, id=f"{old}-0")
    deployed.xadd(f"{ROOT}:dead", {"task": "t-new"})
    assert reap(deployed)["trimmed"] == 1
    assert [f["task"] for _, f in deployed.xrange(f"{ROOT}:dead")] == ["t-new"]


def test_unknown_task_is_not_found(deployed, raw):
    for function, args in [
        ("agentfn_task_complete", ["t9", token_of("t9", 1), "1"]),
        ("agentfn_task_fail", ["t9", token_of("t9", 1), "e"]),
        ("agentfn_task_extend", ["t9", token_of("t9", 1)]),
        ("agentfn_task_cancel", ["t9"]),
        ("agentfn_task_get", ["t9"]),
        ("agentfn_task_requeue", ["t9"]),
    ]:
        assert_refused(deployed, raw, "NOTFOUND", function, *args)


WAKE = f"{ROOT}:delayed-wake"


def test_a_partial_claim_names_what_to_block_on_for_the_rest(deployed):
    """Fewer tasks than asked: every stream was drained, so the reply has the wait ids (read in
    the same call) and the agent can block at once, without an extra empty claim."""
    register(deployed, "a1", "x")
    submit(deployed, "x", "1")
    submit(deployed, "x", "2", "DELAY_MS", "60000")
    partial = claim(deployed, "a1", "COUNT", "5")
    assert [t["id"] for t in partial["tasks"]] == ["t1"]
    assert list(partial["wait"]) == [f"{ROOT}:direct:a1"] + [
        f"{QUEUE}:x:{p}" for p in ("high", "normal", "low")
    ] + [WAKE]
    assert partial["wait"][f"{QUEUE}:x:normal"] == get(deployed, "t1")["entry"]
    assert int(partial["next_due_ms"]) == int(get(deployed, "t2")["due_ms"])
    assert deployed.xread(partial["wait"], block=30) == []  # the claimed entry does not wake it
    submit(deployed, "x", "3")
    assert deployed.xread(partial["wait"], block=2000)
    # The same through NEXT: fewer than asked names the wait ids too; as many as asked does not.
    reply = claim_reply(
        pairs(
            fcall(deployed, "agentfn_task_complete", "t1", token_of("t1", 1), '"ok"', "NEXT", "2")
        )["next"]
    )
    assert (
        [t["id"] for t in reply["tasks"]] == ["t3"]
        and WAKE in reply["wait"]
        and reply["next_due_ms"] != ""
    )
    submit(deployed, "x", "4")
    full = claim_reply(
        pairs(
            fcall(
                deployed,
                "agentfn_task_complete",
                "t3",
                reply["tasks"][0]["token"],
                '"ok"',
                "NEXT",
                "1",
            )
        )["next"]
    )
    assert (
        [t["id"] for t in full["tasks"]] == ["t4"]
        and full["wait"] == {}
        and full["next_due_ms"] == ""
    )


def test_complete_and_fail_next_take_a_lease(deployed, raw):
    register(deployed, "a1", "x")
    for n in range(3):
        submit(deployed, "x", str(n), "TIMEOUT_MS", "1000", "BACKOFF_MS", "0")
    claim(deployed, "a1")
    before = server_ms(deployed)
    reply = pairs(
        fcall(
            deployed,
            "agentfn_task_complete",
            "t1",
            token_of("t1", 1),
            '"ok"',
            "NEXT",
            "1",
            "LEASE_MS",
            "90000",
        )
    )
    [task] = claim_reply(reply["next"])["tasks"]
    assert task["id"] == "t2" and int(task["lease_deadline_ms"]) >= before + 90000
    assert deployed.zscore(f"{ROOT}:leases", "t2") == int(task["lease_deadline_ms"])
    reply = pairs(
        fcall(
            deployed,
            "agentfn_task_fail",
            "t2",
            task["token"],
            "e",
            "NEXT",
            "1",
            "LEASE_MS",
            "80000",
        )
    )
    [task] = claim_reply(reply["next"])["tasks"]
    assert task["id"] == "t3" and int(task["lease_deadline_ms"]) >= before + 80000
    # Without NEXT it claims nothing, so it changes nothing; a bad value is refused first.
    assert complete(deployed, "t3", task["token"], '"ok"', "LEASE_MS", "5000") == {
        "id": "t3",
        "state": "completed",
    }
    [task] = claim(deployed, "a1")["tasks"]
    assert task["id"] == "t2" and int(task["lease_deadline_ms"]) <= server_ms(deployed) + 1000
    for function, args in [
        ("agentfn_task_complete", ["t2", token_of("t2", 2), '"ok"']),
        ("agentfn_task_fail", ["t2", token_of("t2", 2), "e"]),
    ]:
        assert_refused(deployed, raw, "BADARG", function, *args, "NEXT", "1", "LEASE_MS", "0")


def test_an_empty_claim_reads_newest_ids_without_xinfo(deployed):
    """The wait ids are each stream's newest entry id ('0-0' when it has none): XREAD from them
    wakes on exactly the entries added later, like the last generated id, for less."""
    register(deployed, "a1", "x")
    submit(deployed, "x", "1", "PRIORITY", "high")
    submit(deployed, "x", "2", "PRIORITY", "high")
    fcall(
        deployed, "agentfn_task_cancel", "t2"
    )  # deleted: the last generated id is newer than t1's entry
    claim(deployed, "a1")
    deployed.config_resetstat()
    empty = claim(deployed, "a1")
    stats = deployed.info("commandstats")
    assert not any(name.startswith("cmdstat_xinfo") for name in stats), sorted(stats)
    high = f"{QUEUE}:x:high"
    assert (
        empty["wait"][high]
        == get(deployed, "t1")["entry"]
        != deployed.xinfo_stream(high)["last-generated-id"]
    )
    assert empty["wait"][f"{QUEUE}:x:low"] == "0-0" and empty["wait"][WAKE] == "0-0"
    assert deployed.xread(empty["wait"], block=30) == []
    submit(deployed, "x", "3", "PRIORITY", "high")
    assert deployed.xread(empty["wait"], block=2000)[0][0] == high


def test_a_task_becoming_the_earliest_delayed_wakes_blocked_agents(deployed):
    """Delayed tasks are in a sorted set that no XREAD sees: when one becomes the earliest due, an
    entry in the capped delayed-wake stream (in every wait list) wakes the blocked agents, which
    claim again and block until the new next_due_ms. A later due time wakes nobody."""
    register(deployed, "a1", "x")
    empty = claim(deployed, "a1")
    assert empty["wait"][WAKE] == "0-0" and empty["next_due_ms"] == ""
    submit(deployed, "y", "1", "DELAY_MS", "60000")  # any capability: next_due_ms is namespace-wide
    assert [key for key, _ in deployed.xread(empty["wait"], block=2000)] == [WAKE]
    empty = claim(deployed, "a1")
    assert int(empty["next_due_ms"]) == int(get(deployed, "t1")["due_ms"])
    submit(
        deployed, "x", "2", "DELAY_MS", "120000"
    )  # not the earliest: the agents wake before it anyway
    assert deployed.xread(empty["wait"], block=30) == []
    submit(deployed, "x", "3", "BACKOFF_MS", "30000")
    [task] = claim(deployed, "a1")["tasks"]
    empty = claim(deployed, "a1")
    assert (
        fail(deployed, "t3", token_of("t3", 1))["state"] == "delayed"
    )  # a retry backoff, due before t1
    assert [key for key, _ in deployed.xread(empty["wait"], block=2000)] == [WAKE]
    assert int(claim(deployed, "a1")["next_due_ms"]) == int(get(deployed, "t3")["due_ms"])
    assert deployed.xlen(WAKE) == 2
    for n in range(300):
        submit(deployed, "x", str(n), "DELAY_MS", str(1000 - n))  # each the earliest
    assert deployed.xlen(WAKE) <= 2 * DEFAULTS["delayed_wake_max"]
