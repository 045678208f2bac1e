"""Waiting for tasks on a cluster whose topology changes under the test (failover, slot move)."""

from __future__ import annotations

import time

import redis

import agentfn
from agentfn import keys


def wait_all_completed(client: agentfn.Client, task_ids: list[str], timeout: float) -> None:
    """Block until every task is completed: XREAD BLOCK on the namespace's event stream of its
    current owner, from the newest id read before each look; errors while the owner changes make
    the client find the owner again."""
    events = keys.events(client.namespace)
    deadline = time.monotonic() + timeout
    pending = list(task_ids)
    while True:
        remaining = deadline - time.monotonic()
        try:
            newest = client.redis.xrevrange(events, count=1)
            last_id = newest[0][0] if newest else "0-0"
            pending = [t for t in pending if client.get_task(t).state != "completed"]
            if not pending:
                return
            if remaining <= 0:
                states = {t: client.get_task(t).state for t in pending[:5]}
                raise AssertionError(f"{len(pending)} tasks not completed, e.g. {states}")
            client.redis.execute_command(
                "XREAD", "BLOCK", max(1, int(min(remaining, 2) * 1000)), "STREAMS", events, last_id
            )
        except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError):
            if remaining <= 0:
                raise
            client.route.reroute()
            client.route.execute("PING")  # retried (bounded) until a node answers for the slot
