"""The Celery side of bench/peers.py: an app with its Redis broker on $BENCH_REDIS_URL, no result
backend, and one no-op task.

The worker process runs ``python -m celery -A bench.peer_celery worker --pool solo``; the
benchmark sends with :func:`noop` ``.delay(payload)`` from its own process.
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

#: The lists the handler pushes to: on the payload "first" (its start time) and "last".
STARTED_LIST = "bench:peer:started"
DONE_LIST = "bench:peer:done"
QUEUE = "bench"

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("bench_peer", broker=URL)
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
_signals = redis.Redis.from_url(URL)


@app.task(name="bench.noop")
def noop(payload: str | None) -> None:
    """A no-op task; "first" stamps its start time, "last" says the last task ran."""
    if payload == "first":
        _signals.rpush(STARTED_LIST, repr(time.time()))
    elif payload == "last":
        _signals.rpush(DONE_LIST, "1")
