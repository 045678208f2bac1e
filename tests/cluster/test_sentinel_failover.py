"""A Sentinel-managed primary (redis+sentinel:// URL) killed with SIGKILL: with the durability
option nothing acknowledged is lost once the sentinel promotes a replica; the agent goes on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

import agentfn

from .agents import counting_echo
from .nodes import wait_until
from .sentinel import SentinelGroup
from .waiting import wait_all_completed


@pytest.fixture
def sentinel_group() -> Iterator[SentinelGroup]:
    group = SentinelGroup.start()
    yield group
    group.stop()


def test_sentinel_failover_keeps_acknowledged_work(sentinel_group: SentinelGroup) -> None:
    connection = agentfn.connect(sentinel_group.url, decode_responses=True)
    assert isinstance(connection, redis.Redis)
    agentfn.deploy(connection, "sentinel")
    client = agentfn.Client(connection, "sentinel", wait_replicas=1, wait_timeout_ms=2000)
    agent, runs = counting_echo(client, "steady", concurrency=4, lease_ms=3000)

    thread = agent.start()
    try:
        before = [client.submit("echo", {"n": n}) for n in range(30)]
        wait_all_completed(client, before, timeout=20)
        last = [client.submit("echo", {"n": n}) for n in range(30, 50)]
        old = sentinel_group.primary_port()
        sentinel_group.kill(old)
        wait_until(lambda: sentinel_group.primary_port() != old, 30, "the sentinel's failover")
        sentinel_group.wait_synced(1)
        with redis.Redis(port=sentinel_group.primary_port(), decode_responses=True) as primary:
            for task_id in before + last:
                assert primary.exists(f"{client.root}:task:{task_id}"), task_id
        after = [client.submit("echo", {"n": n}) for n in range(50, 60)]
        wait_all_completed(client, before + last + after, timeout=40)
        assert all(runs[task_id] == 1 for task_id in before), "a completed task ran again"
    finally:
        agent.stop(now=True)
        thread.join(10)
    assert not thread.is_alive()
