"""The Dramatiq side of bench/peers.py: a RedisBroker on $BENCH_REDIS_URL and one no-op actor.

The worker process runs ``python -m dramatiq bench.peer_dramatiq --processes 1`` (default
threads); the benchmark sends with :func:`noop` ``.send(payload)`` from its own process.
"""

from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker

#: The lists the handler pushes to: on the payload "first" (its start time) and "last".
STARTED_LIST = "bench:peer:started"
DONE_LIST = "bench:peer:done"

broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench")
def noop(payload: str | None) -> None:
    """A no-op task; "first" stamps its start time, "last" says the last task ran."""
    if payload == "first":
        broker.client.rpush(STARTED_LIST, repr(time.time()))
    elif payload == "last":
        broker.client.rpush(DONE_LIST, "1")
