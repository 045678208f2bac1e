"""Peers in the task benchmark: Dramatiq and Celery draining the same no-op tasks on the same
redis-server as agentfn (bench/tasks.py runs them in its run, between its own figures).

Each peer: the benchmark process submits ``count`` tasks one call at a time (the first with
payload "first", the last with "last"), then one worker process drains them:

- Dramatiq: ``python -m dramatiq bench.peer_dramatiq --processes 1`` (RedisBroker, the default
  8 threads, default middleware);
- Celery: ``python -m celery -A bench.peer_celery worker --pool solo`` (Redis broker, no result
  backend; gossip, mingle and heartbeat off: cluster chatter, not the cost of a task).

The drain rate is the tasks over the span from the first task's start (its handler stamps
``time.time()``) to the moment the queue is seen drained (the handler of "last" pushes to a
list; then the broker's own bookkeeping is polled until no message is left unacknowledged).
Round trips, commands and Redis CPU per task (bench/meter.py) cover the task's whole life: its
submit and its drain, worker start-up included, the harness's own polls excluded.

The peers' versions are pinned in the ``bench`` extra of pyproject.toml (``pip install -e
'.[bench]'``); when one is not installed its figures say so instead of failing the run.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.meter import Meter

#: The lists the peers' handlers push to (bench/peer_dramatiq.py and bench/peer_celery.py).
STARTED_LIST = "bench:peer:started"
DONE_LIST = "bench:peer:done"

#: peer -> (the package it needs, the worker command after ``python -m``).
PEERS: dict[str, tuple[str, list[str]]] = {
    "dramatiq": ("dramatiq", ["dramatiq", "bench.peer_dramatiq", "--processes", "1"]),
    "celery": (
        "celery",
        [
            "celery",
            "-A",
            "bench.peer_celery",
            "worker",
            "--pool",
            "solo",
            "--queues",
            "bench",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ],
    ),
}


def available(peer: str) -> bool:
    """Whether the peer's package is installed (the bench extra)."""
    return importlib.util.find_spec(PEERS[peer][0]) is not None


def _module(peer: str, url: str) -> Any:
    os.environ["BENCH_REDIS_URL"] = url
    return importlib.import_module(f"bench.peer_{peer}")


@contextmanager
def running(
    arguments: list[str], environment: dict[str, str] | None = None, quiet: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m <arguments>`` started in the repository for the block, terminated after it
    (killed when it does not stop). ``quiet``: its output goes nowhere."""
    output = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen(
        [sys.executable, "-m", *arguments], cwd=REPO, env=environment, stdout=output, stderr=output
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def worker(peer: str, url: str) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """The peer's worker process for the block."""
    environment = dict(os.environ, BENCH_REDIS_URL=url, PYTHONPATH=str(REPO))
    return running(PEERS[peer][1], environment, quiet=True)


def _pending(connection: redis.Redis, peer: str) -> int:
    """Messages the peer's broker still holds: Dramatiq's message hash (a message leaves it when
    acknowledged); Celery's queue list plus its unacknowledged hash."""
    if peer == "dramatiq":
        return int(connection.hlen("dramatiq:bench.msgs"))
    return int(connection.llen("bench")) + int(connection.hlen("unacked"))


def _wait_drained(connection: redis.Redis, peer: str) -> int:
    """After the last task ran: until the broker holds no message; 1 ms waits on the server.
    Returns the commands sent (for the meter)."""
    sent = 0
    for _ in range(30_000):
        pending = _pending(connection, peer)
        sent += 1 if peer == "dramatiq" else 2
        if pending == 0:
            return sent
        connection.blpop(["bench:never"], timeout=0.001)
        sent += 1
    raise RuntimeError(f"{peer} did not drain")


def measure(connection: redis.Redis, url: str, peer: str, count: int) -> dict[str, float]:
    """Submit ``count`` no-op tasks one call at a time, then drain them with one worker process.
    Returns per_s and, per task life, reads_per_task, commands_per_task, cpu_us_per_task (and
    the drain's share: drain_cpu_us_per_task, drain_commands_per_task)."""
    module = _module(peer, url)
    send = module.noop.send if peer == "dramatiq" else module.noop.delay
    connection.flushall()
    payloads: list[str | None] = [None] * count
    payloads[0], payloads[-1] = "first", "last"
    meter = Meter(connection)
    for payload in payloads:
        send(payload)
    submitted = meter.stop()
    meter = Meter(connection)
    with worker(peer, url) as process:
        own = 1
        while connection.blpop([DONE_LIST], timeout=1) is None:
            own += 1
            if process.poll() is not None:
                raise RuntimeError(f"the {peer} worker exited with {process.returncode}")
        own += _wait_drained(connection, peer)
        drained_at = time.time()
        drained = meter.stop(own_commands=own)
    started_at = float(connection.lpop(STARTED_LIST))
    life = submitted + drained
    return {
        "per_s": count / max(drained_at - started_at, 1e-3),
        **life.per(count),
        "drain_cpu_us_per_task": drained.cpu / count * 1e6,
        "drain_commands_per_task": drained.commands / count,
    }


def main() -> None:
    import argparse

    from agentfn.server import EmbeddedRedis

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5_000)
    parser.add_argument("--peers", default="dramatiq,celery")
    options = parser.parse_args()
    with EmbeddedRedis() as server:
        connection = redis.Redis(host=server.host, port=server.port, decode_responses=True)
        for peer in options.peers.split(","):
            if not available(peer):
                print(f"{peer}: not installed (pip install -e '.[bench]')")
                continue
            figures = measure(connection, server.url, peer, options.tasks)
            print(peer, {name: round(value, 2) for name, value in figures.items()})


if __name__ == "__main__":
    main()
