"""An idle agent blocks on Redis and wakes at once; the blocking helpers; Batch."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time

import pytest
import redis.asyncio

import agentfn
from agentfn.agent import waiter
from agentfn.client import waiting

from .agent_fixtures import serving, wait_for_task

DONE = {"completed", "failed", "dead", "canceled"}


def test_submit_between_the_empty_claim_and_the_block_wakes_the_agent(client, monkeypatch):
    """The race behind a lost wake-up, forced: the task lands after the claim found nothing and
    before the XREAD starts. Blocking from the claim's ids returns at once; blocking from '$'
    (the new entries only) would sleep through it for the whole heartbeat interval (20 s)."""
    real_wait = waiting.wait_on_streams
    raced: list[str] = []

    def submit_then_wait(connection, streams, timeout_ms):
        if not raced:
            raced.append(client.submit("race", {}))
            assert timeout_ms >= 10_000  # the agent would really block that long
        return real_wait(connection, streams, timeout_ms)

    monkeypatch.setattr(waiter, "wait_on_streams", submit_then_wait)
    agent = agentfn.Agent(client, "a1", ttl_ms=60_000)
    started = threading.Event()

    @agent.handler("race")
    def race(task):
        started.set()

    with serving(agent):
        began = time.monotonic()
        assert started.wait(5)
        assert time.monotonic() - began < 1.0
        assert raced and wait_for_task(client, raced[0], DONE).state == "completed"


def test_an_idle_agent_starts_a_new_task_within_milliseconds(client):
    agent = agentfn.Agent(client, "a1", ttl_ms=60_000)
    started_at: dict[str, float] = {}
    started = threading.Event()

    @agent.handler("ping")
    def ping(task):
        started_at[task.id] = time.perf_counter()
        started.set()

    latencies = []
    with serving(agent):
        for _ in range(30):
            started.clear()
            submitted = time.perf_counter()
            task_id = client.submit("ping", {})
            assert started.wait(5)
            latencies.append(started_at[task_id] - submitted)
    # Typically well under a millisecond; the bound leaves room for a busy test machine.
    assert statistics.median(latencies) < 0.05, latencies


def test_a_retry_backoff_is_waited_out_until_the_claims_next_due_time(client):
    """After a failure the NEXT claim finds nothing but names the retry's due time: the agent
    blocks until then (the reaper, which would also promote it, is kept out of the way)."""
    agent = agentfn.Agent(client, "a1", ttl_ms=60_000, reap_interval_ms=60_000)

    @agent.handler("flaky")
    def flaky(task):
        if task.attempt == 1:
            raise RuntimeError("try again")
        return "second time lucky"

    task_id = client.submit("flaky", {}, backoff_ms=300)
    with serving(agent):
        info = wait_for_task(client, task_id, DONE)
    assert (info.state, info.attempt) == ("completed", 2)
    retried_at = info.errors[0]["at_ms"] + 300
    assert retried_at <= info.started_ms < retried_at + 1000


def connections(client: agentfn.Client) -> set[str]:
    return {c["id"] for c in client.redis.client_list()}


def wait_until_blocked(client: agentfn.Client, others: set[str]) -> None:
    """Until a connection not among ``others`` (the agent's) blocks in XREAD (CLIENT LIST),
    waiting on the server clock."""
    for _ in range(1000):
        if any(
            c["cmd"] == "xread" and "b" in c["flags"] and c["id"] not in others
            for c in client.redis.client_list()
        ):
            return
        client.redis.blpop(["agentfn-test:never"], timeout=0.005)
    raise AssertionError("the agent never blocked")


def test_a_delayed_task_submitted_while_idle_starts_when_due_without_the_reaper(client):
    """Nothing in a stream shows a delayed task, but it is the earliest due: the delayed-wake
    entry wakes the blocked agent, whose claim names next_due_ms, and it blocks until then. The
    reaper (which also promotes due tasks) runs only once, at the start."""
    agent = agentfn.Agent(client, "a1", ttl_ms=60_000, reap_interval_ms=600_000)

    @agent.handler("later")
    def later(task):
        return "done"

    others = connections(client)
    with serving(agent):
        wait_until_blocked(client, others)  # idle, for up to its heartbeat interval (20 s)
        task_id = client.submit("later", {}, delay_ms=300)
        assert client.get_task(task_id).state == "delayed"
        info = wait_for_task(client, task_id, DONE)
    assert info.state == "completed"
    assert info.due_ms <= info.started_ms < info.due_ms + 200


def test_a_partial_claim_blocks_on_its_own_wait_ids(client, monkeypatch):
    """A claim that returns fewer tasks than asked names what to block on: the agent blocks at
    once (one claim, no extra empty one), and a task submitted later still wakes it."""
    claims: list[int] = []
    real_claim = client.claim

    def counting_claim(*args, **kwargs):
        claims.append(1)
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(client, "claim", counting_claim)
    agent = agentfn.Agent(client, "a1", ttl_ms=60_000, concurrency=4)
    release = threading.Event()

    @agent.handler("job")
    def job(task):
        release.wait(5)

    first = client.submit("job", {})
    others = connections(client)
    with serving(agent):
        wait_until_blocked(client, others)
        assert client.get_task(first).state == "running" and len(claims) == 1
        second = client.submit("job", {})
        assert wait_for_task(client, second, {"running"}).state == "running"
        release.set()
        for task_id in (first, second):
            assert wait_for_task(client, task_id, DONE).state == "completed"
    assert len(claims) == 2  # the first, and the one after the wake-up (then only NEXT)


def test_tasks_claimed_by_next_get_the_agents_lease(client):
    """The lease the agent asks for on claims is also asked for on the claims that NEXT makes."""
    agent = agentfn.Agent(client, "a1", ttl_ms=60_000, lease_ms=5_000)
    leases: dict[str, int] = {}

    @agent.handler("job")
    def job(task):
        info = task.client.get_task(task.id)
        leases[task.id] = info.lease_deadline_ms - info.started_ms

    ids = [client.submit("job", {}, timeout_ms=600_000) for _ in range(2)]
    with serving(agent):
        for task_id in ids:
            assert wait_for_task(client, task_id, DONE).state == "completed"
    assert leases == {ids[0]: 5_000, ids[1]: 5_000}  # the second came with the first's completion


def test_wait_for_work_returns_on_a_new_entry_and_on_timeout(client, r):
    client.agent_register("w", ["job"])
    empty = client.claim("w")
    assert empty.tasks == [] and empty.wait_streams
    assert agentfn.client.waiting.wait_for_work(r, empty, 50) is False  # nothing came: timed out
    client.submit("job", {})
    assert agentfn.client.waiting.wait_for_work(r, empty, 5_000) is True
    assert len(client.claim("w").tasks) == 1


def test_wait_for_work_asyncio(client, redis_url):
    client.agent_register("w", ["job"])
    empty = client.claim("w")

    async def main():
        connection = redis.asyncio.Redis.from_url(redis_url)
        try:
            timed_out = await agentfn.client.waiting.wait_for_work(connection, empty, 50)
            waiter = asyncio.ensure_future(
                agentfn.client.waiting.wait_for_work(connection, empty, 5_000)
            )
            await asyncio.get_running_loop().run_in_executor(None, client.submit, "job", {})
            return timed_out, await waiter
        finally:
            await connection.aclose()

    assert asyncio.run(main()) == (False, True)


def test_server_clock_turns_a_due_time_into_a_wait(client):
    clock = waiting.ServerClock()
    assert clock.until(10**15) == 0.0  # nothing observed yet
    sent = clock.local_ms()
    seconds, micros = client.redis.time()
    clock.observe(seconds * 1000 + micros // 1000, sent, clock.local_ms())
    assert 900 <= clock.until(seconds * 1000 + micros // 1000 + 1000) <= 1000
    assert clock.until(0) == 0.0


def test_batch_sends_many_calls_in_one_round_trip(client, r):
    batch = agentfn.Batch(client)
    for i in range(50):
        batch.submit("job", {"i": i})
    batch.cancel("t999")
    before = r.info("stats")["total_reads_processed"]
    results = batch.execute(raise_on_error=False)
    assert r.info("stats")["total_reads_processed"] - before <= 3  # the batch (and the INFO)
    assert results[:50] == [f"t{i}" for i in range(1, 51)]
    assert isinstance(results[50], agentfn.NotFound)
    assert len(batch) == 0 and batch.execute() == []
    batch.cancel("t999")
    with pytest.raises(agentfn.NotFound):
        batch.execute()
