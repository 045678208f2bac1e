"""Task routing through the Python client, sync (Client) and asyncio (AsyncClient)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
import redis.asyncio

import agentfn
from agentfn import (
    ClaimedTask,
    ClaimResult,
    CompleteManyResult,
    CompleteResult,
    ExtendResult,
    FailResult,
    TaskInfo,
    keys,
)
from agentfn.errors import BadArgument, InvalidState, NotFound, StaleToken

from .helpers import server_ms, wait_until


def test_submit_claim_complete(client):
    client.agent_register("a1", ["web_search"])
    task_id = client.submit(
        "web_search", {"q": "redis"}, priority=agentfn.Priority.HIGH, timeout_ms=5_000
    )
    assert task_id == "t1"
    claimed = client.claim("a1")
    assert (
        isinstance(claimed, ClaimResult)
        and claimed.wait_streams == {}
        and claimed.next_due_ms is None
    )
    [task] = claimed.tasks
    assert re.fullmatch(r"1-[0-9a-f]{40}", task.token)  # the attempt, then 40 hex digits
    assert task == ClaimedTask(
        id="t1",
        capability="web_search",
        payload={"q": "redis"},
        attempt=1,
        token=task.token,
        lease_deadline_ms=task.lease_deadline_ms,
        priority="high",
        workflow=None,
        step=None,
        inputs=None,
        timeout_ms=5_000,
    )
    done = client.complete(task.id, task.token, ["a", 1])
    assert done == CompleteResult(id="t1", state="completed", next=None)
    info = client.get_task("t1")
    assert isinstance(info, TaskInfo)
    assert (
        info.state == agentfn.TaskState.COMPLETED
        and info.result == ["a", 1]
        and info.payload == {"q": "redis"}
    )
    assert (
        info.agent == "a1"
        and info.attempt == 1
        and info.errors == []
        and info.cancel_requested is False
    )
    assert info.finished_ms is not None and info.to is None and info.workflow is None


def test_plain_string_payload_and_result_travel_as_json(client):
    client.agent_register("a1", ["x"])
    client.submit("x", "just text")
    [task] = client.claim("a1").tasks
    assert task.payload == "just text"
    client.complete(task.id, task.token, None)
    assert client.get_task(task.id).result is None


def test_complete_next_and_fail_next(client):
    client.agent_register("a1", ["x"])
    for n in range(3):
        client.submit("x", n, backoff_ms=0)
    [first] = client.claim("a1").tasks
    done = client.complete(first.id, first.token, "ok", next=2)
    assert done.next is not None and [t.payload for t in done.next.tasks] == [1, 2]
    second, third = done.next.tasks
    failed = client.fail(second.id, second.token, "flaky", next=1)
    assert isinstance(failed, FailResult) and failed.state == "queued" and failed.due_ms is not None
    assert failed.next is not None and [t.id for t in failed.next.tasks] == [second.id]
    final = client.fail(third.id, third.token, "bad input", retry=False)
    assert final == FailResult(
        id=third.id, state="failed", due_ms=None, next=None, attempt=1, max_attempts=3
    )


def test_empty_claim_tells_what_to_wait_on(client, deployed):
    client.agent_register("a1", ["x"])
    client.submit("x", 1, delay_ms=60_000)
    empty = client.claim("a1", count=5)
    assert empty.tasks == []
    assert set(empty.wait_streams) == {
        f"{client.root}:direct:a1",
        f"{client.root}:delayed-wake",
    } | {f"{client.root}:queue:x:{p}" for p in ("high", "normal", "low")}
    assert empty.next_due_ms is not None and empty.next_due_ms >= server_ms(deployed) + 59_000


def test_partial_claim_and_leases_of_next(client, deployed):
    client.agent_register("a1", ["x"])
    for n in range(3):
        client.submit("x", n, timeout_ms=1_000, backoff_ms=0)
    partial = client.claim("a1", count=2, lease_ms=70_000)
    assert [t.payload for t in partial.tasks] == [0, 1] and partial.wait_streams == {}
    first, second = partial.tasks
    before = server_ms(deployed)
    done = client.complete(first.id, first.token, "ok", next=5, lease_ms=90_000)
    assert done.next is not None and [t.payload for t in done.next.tasks] == [2]
    assert done.next.tasks[0].lease_deadline_ms >= before + 90_000
    assert (
        f"{client.root}:queue:x:normal" in done.next.wait_streams
    )  # fewer than asked: what to block on
    failed = client.fail(second.id, second.token, "again", next=1, lease_ms=80_000)
    assert failed.next is not None and failed.next.tasks[0].id == second.id
    assert failed.next.tasks[0].lease_deadline_ms >= before + 80_000
    # Without next nothing is claimed, so no lease is sent.
    assert (
        client.complete(second.id, failed.next.tasks[0].token, "ok", lease_ms=90_000).next is None
    )


def test_extend_cancel_requeue_reap(client, deployed):
    client.agent_register("a1", ["x"])
    client.submit("x", 1, timeout_ms=1_000)
    [task] = client.claim("a1", lease_ms=2_000).tasks
    extended = client.extend(task.id, task.token, lease_ms=60_000)
    assert isinstance(extended, ExtendResult) and not extended.canceled
    assert (
        extended.lease_deadline_ms is not None
        and extended.lease_deadline_ms > task.lease_deadline_ms
    )
    assert client.cancel(task.id) == "running"
    assert client.extend(task.id, task.token).canceled is True
    assert client.complete(task.id, task.token, "late").state == "canceled"
    with pytest.raises(InvalidState):
        client.cancel(task.id)

    client.submit("x", 2, max_attempts=1, timeout_ms=20)
    [task] = client.claim("a1").tasks
    wait_until(deployed, task.lease_deadline_ms)
    counters = client.reap(limit=10)
    assert counters["expired_leases"] == 1 and counters["dead_lettered"] == 1
    assert set(counters) == {
        "expired_leases",
        "requeued",
        "dead_lettered",
        "promoted",
        "lapsed_agents",
        "released",
        "expired_messages",
        "trimmed",
        "orphaned",
        "deleted_streams",
        "pruned",
    }
    info = client.get_task(task.id)
    assert info.state == "dead" and info.error == "lease expired" and info.errors[0]["attempt"] == 1
    assert client.requeue(task.id, max_attempts=2) == "queued"
    assert client.get_task(task.id).max_attempts == 3
    assert client.claim("a1").tasks[0].token.startswith("2-")


def test_errors_map_to_exceptions(client):
    client.agent_register("a1", ["x"])
    with pytest.raises(BadArgument):
        client.submit("x", 1, priority="urgent")
    with pytest.raises(NotFound):
        client.get_task("t404")
    task_id = client.submit("x", 1, backoff_ms=0)
    [task] = client.claim("a1").tasks
    client.fail(task_id, task.token, "again")
    client.claim("a1")
    with pytest.raises(StaleToken):
        client.complete(task_id, task.token, "stale")


def test_idempotency_key(client):
    first = client.submit("x", 1, idempotency_key="job-1")
    assert client.submit("x", 2, idempotency_key="job-1") == first
    assert client.get_task(first).idempotency_key == "job-1"


def test_direct_routing(client):
    client.agent_register("a1", ["x"])
    client.agent_register("a2", [])
    client.submit("x", "for a2", to="a2")
    assert client.claim("a1").tasks == []
    assert [t.payload for t in client.claim("a2").tasks] == ["for a2"]


def test_async_client_runs_the_same_lifecycle(deployed, redis_url):
    async def scenario() -> dict[str, Any]:
        connection = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        client = agentfn.AsyncClient(connection, "default")
        try:
            await client.agent_register("a1", ["x"])
            task_id = await client.submit("x", {"n": 1}, retention_ms=60_000)
            second_id = await client.submit("x", {"n": 2}, backoff_ms=0)
            claimed = await client.claim("a1")
            [task] = claimed.tasks
            extended = await client.extend(task.id, task.token)
            done = await client.complete(task.id, task.token, {"ok": True}, next=1)
            [second] = done.next.tasks
            failed = await client.fail(second.id, second.token, "boom", retry=False)
            requeued = await client.requeue(second_id)
            canceled = await client.cancel(second_id)
            info = await client.get_task(task_id)
            counters = await client.reap()
            return {
                "task": task,
                "extended": extended,
                "done": done,
                "failed": failed,
                "requeued": requeued,
                "canceled": canceled,
                "info": info,
                "counters": counters,
                "second": second,
            }
        finally:
            await connection.aclose()

    out = asyncio.run(scenario())
    assert out["task"].payload == {"n": 1} and out["task"].token.startswith("1-")
    assert out["extended"].canceled is False
    assert out["done"].state == "completed" and out["second"].payload == {"n": 2}
    assert out["failed"].state == "failed"
    assert out["requeued"] == "queued" and out["canceled"] == "queued"
    assert out["info"].result == {"ok": True} and out["info"].retention_ms == 60_000
    assert out["counters"]["expired_leases"] == 0


def test_async_client_maps_errors(deployed, redis_url):
    async def scenario() -> None:
        connection = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        try:
            client = agentfn.AsyncClient(connection, "default")
            with pytest.raises(NotFound):
                await client.cancel("t404")
        finally:
            await connection.aclose()

    asyncio.run(scenario())


def test_a_batch_cut_short_leaves_no_reply_for_the_next_call(client, r):
    """A record that does not parse (written by hand) stops a batch midway, with its WAIT's reply
    still to come (no replica acknowledges: WAIT answers at its timeout): the connection is
    closed, not handed back to the pool, where the next call would read that reply as its own."""
    good = client.submit("work", {})
    bad = client.submit("work", {})
    r.hset(keys.task(client.namespace, bad), "attempt", "not a number")
    # Shorter than redis-py's socket timeout (5 s), after which it would resend.
    durable = agentfn.Client(r, client.namespace, wait_replicas=1, wait_timeout_ms=2_000)
    batch = agentfn.Batch(durable)
    batch.submit("work", {})  # a write: the batch ends with WAIT 1 2000
    batch.get_task(bad)
    with pytest.raises(ValueError, match="not a number"):
        batch.execute()
    assert client.get_task(good).id == good  # on the same pool; else WAIT's reply (0)


def test_complete_many_reports_each_item_and_claims_next(client):
    client.agent_register("a1", ["x"])
    for n in range(4):
        client.submit("x", {"n": n})
    first, second = client.claim("a1", 2).tasks
    done = client.complete_many(
        [
            (first.id, first.token, {"r": 1}),
            ("t404", second.token, None),  # refused alone: the others complete
            (second.id, second.token, [2]),
        ],
        next=3,
        lease_ms=60_000,
    )
    assert isinstance(done, CompleteManyResult)
    assert [(item.id, item.state) for item in done.items] == [
        (first.id, "completed"),
        ("t404", "refused"),
        (second.id, "completed"),
    ]
    assert isinstance(done.items[1].error, NotFound) and done.items[0].error is None
    assert client.get_task(first.id).result == {"r": 1} and client.get_task(second.id).result == [2]
    assert done.next is not None and [task.payload for task in done.next.tasks] == [
        {"n": 2},
        {"n": 3},
    ]
    # The tasks NEXT claimed complete with their tokens, through a Batch as well.
    batch = agentfn.Batch(client)
    batch.complete_many([(task.id, task.token, "ok") for task in done.next.tasks])
    batch.complete_many([(first.id, first.token, "again")])
    again, stale = batch.execute()
    assert [item.state for item in again.items] == ["completed", "completed"]
    assert isinstance(stale.items[0].error, StaleToken)
    with pytest.raises(BadArgument):  # malformed: the whole call is refused
        client.complete_many([(first.id, "1", "x")])
    with pytest.raises(TypeError):  # no item: nothing to send
        client.complete_many([])


def test_submit_many_creates_the_tasks_with_shared_options(client, redis_url):
    ids = client.submit_many([("x", {"n": 1}), ("y", [2])], priority="high", max_attempts=2)
    assert [client.get_task(task_id).payload for task_id in ids] == [{"n": 1}, [2]]
    assert {
        (client.get_task(task_id).priority, client.get_task(task_id).max_attempts)
        for task_id in ids
    } == {("high", 2)}
    batch = agentfn.Batch(client)
    batch.submit_many([("x", "a")])
    batch.submit("x", "b")
    [many], single = batch.execute()
    assert int(single[1:]) == int(many[1:]) + 1
    with pytest.raises(BadArgument):  # malformed: the whole call is refused
        client.submit_many([("x", 1), ("bad capability", 2)])
    with pytest.raises(TypeError):  # no item: nothing to send
        client.submit_many([])

    async def scenario() -> list[str]:
        connection = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await agentfn.AsyncClient(connection, "default").submit_many([("x", 3)] * 3)
        finally:
            await connection.aclose()

    ids = asyncio.run(scenario())
    assert [client.get_task(task_id).payload for task_id in ids] == [3, 3, 3]


def test_async_client_completes_many(deployed, redis_url):
    async def scenario() -> list[str]:
        connection = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        client = agentfn.AsyncClient(connection, "default")
        try:
            await client.agent_register("a1", ["x"])
            for n in range(2):
                await client.submit("x", n)
            tasks = (await client.claim("a1", 2)).tasks
            done = await client.complete_many(
                [(task.id, task.token, task.payload) for task in tasks]
            )
            return [item.state for item in done.items]
        finally:
            await connection.aclose()

    assert asyncio.run(scenario()) == ["completed", "completed"]
