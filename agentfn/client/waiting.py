"""Blocking helpers: how an idle agent waits for work without polling (ARCHITECTURE.md rule 7).

A claim that returns fewer tasks than asked (or an inbox read that finds nothing) returns,
beside its list, the streams it looked at and the newest id of each (``wait``). Blocking with
``XREAD BLOCK`` on exactly those ids wakes at the first entry added after that claim, so a task
submitted between "found nothing" and "block" is never missed: its entry id is larger than the
id the claim returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from .. import keys
from ..replies import range_entries, xread_entries
from .blocking import blocking_call, blocking_call_async, xread_args, xread_blocking


class HasWaitStreams(Protocol):
    """What wait_for_work needs from a claim result: ``{stream key: last id}``."""

    @property
    def wait_streams(self) -> Mapping[str, str]: ...


def _wake_args(streams: Mapping[str, str], timeout_ms: float) -> list[Any]:
    # COUNT 1: the entry itself is not needed, only the wake-up.
    return xread_args(streams, int(timeout_ms), 1)


def wait_on_streams(client: redis.Redis, streams: Mapping[str, str], timeout_ms: float) -> bool:
    """Block until one of ``streams`` ({key: last id}) gets a newer entry or timeout_ms passes.

    True when an entry arrived. With no streams there is nothing that can wake the caller but
    time, so it waits out the timeout. The read lasts its block time whatever the connection's
    socket timeout and is never re-sent (blocking.py); a server that does not answer within
    the block time and a margin counts as a timeout (the connection is dropped).
    """
    if timeout_ms <= 0:
        return False
    if not streams:
        time.sleep(timeout_ms / 1000)
        return False
    try:
        return bool(blocking_call(client, int(timeout_ms), *_wake_args(streams, timeout_ms)))
    except redis.TimeoutError:
        return False


async def wait_on_streams_async(
    client: redis.asyncio.Redis, streams: Mapping[str, str], timeout_ms: float
) -> bool:
    """The asyncio twin of wait_on_streams."""
    if timeout_ms <= 0:
        return False
    if not streams:
        await asyncio.sleep(timeout_ms / 1000)
        return False
    try:
        reply = await blocking_call_async(client, int(timeout_ms), *_wake_args(streams, timeout_ms))
        return bool(reply)
    except redis.TimeoutError:
        return False


def wait_for_work(
    client: Any, claim_result: HasWaitStreams, timeout_ms: float
) -> bool | Awaitable[bool]:
    """XREAD BLOCK on the streams a claim with fewer tasks than asked named, from the ids it returned.

    ``client`` is a ``redis.Redis`` (returns a bool: True when work may be ready) or a
    ``redis.asyncio.Redis`` (returns an awaitable of it). Use a connection that nothing else
    is waiting on: the call holds it for up to ``timeout_ms``. Claim again after it returns.
    """
    if isinstance(client, redis.asyncio.Redis):
        return wait_on_streams_async(client, claim_result.wait_streams, timeout_ms)
    return wait_on_streams(client, claim_result.wait_streams, timeout_ms)


#: How long stop_thread waits for the thread to exit before it sends CLIENT UNBLOCK again (s).
UNBLOCK_RETRY_S = 0.02


class BlockingConnection:
    """One connection of its own to the server of ``client``, for blocking reads.

    ``client`` is a ``redis.Redis``, or a client's ``route`` (on a cluster: the primary serving
    the namespace, found again by ``reconnect()`` after a redirect, a failover or a closed
    connection). ``unblock()`` ends a blocked read from another thread (CLIENT UNBLOCK, sent on
    the server's own pool): the read returns as on a timeout. The connection's id is learnt on
    every (re)connection, since a reconnect changes it; redis-py never re-sends a command on it
    (its Retry would re-block from scratch, on a new connection whose id nobody knows).
    """

    def __init__(self, client: Any) -> None:
        self._source = client
        self._id: int | None = None
        self._connect()

    def _connect(self) -> None:
        control = getattr(self._source, "redis", self._source)
        pool = control.connection_pool
        settings = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}  # never re-sent
        own_pool = redis.ConnectionPool(
            connection_class=pool.connection_class, max_connections=1, **settings
        )
        self._control = control
        self.redis = redis.Redis(connection_pool=own_pool, single_connection_client=True)
        # Each (re)connection learns its id at once: an unblock never names an earlier one.
        connection = self.redis.connection
        assert connection is not None  # a single-connection client holds its connection
        connection.register_connect_callback(self._learn_id)

    def _learn_id(self, connection: Any) -> None:
        try:
            connection.send_command("CLIENT", "ID")
            self._id = int(connection.read_response())
        except (redis.RedisError, OSError, ValueError):
            self._id = None

    def reconnect(self) -> None:
        """After any error: find the server again (a cluster's slot owner) and learn the new id."""
        reroute = getattr(self._source, "reroute", None)
        if reroute is not None:
            reroute()
            old = self.redis
            try:
                self._connect()  # the owner's address
                old.close()
            except redis.RedisError:
                pass  # no owner known yet (a failover in progress): the next error tries again
        self.refresh_id()

    def refresh_id(self) -> None:
        """Learn the connection's id (call before the first block, and after a connection error)."""
        try:
            self._id = self.redis.client_id()
        except redis.RedisError:
            self._id = None

    def unblock(self) -> None:
        if self._id is not None:
            with contextlib.suppress(redis.RedisError):
                self._control.execute_command("CLIENT", "UNBLOCK", self._id)

    def stop_thread(self, thread: threading.Thread, timeout_s: float) -> None:
        """Wake ``thread`` out of its blocked reads until it exits, for at most ``timeout_s``.

        One CLIENT UNBLOCK can arrive while the thread is between two reads, where it does
        nothing; so the unblock is repeated while the thread lives (each join waits a little).
        """
        deadline = time.monotonic() + timeout_s
        while thread.is_alive() and time.monotonic() < deadline:
            self.unblock()
            thread.join(UNBLOCK_RETRY_S)

    def close(self) -> None:
        self.redis.close()


class ServerClock:
    """An estimate of the Redis server's clock in ms, from server times seen in replies.

    The library keeps time on the server (ARCHITECTURE.md rule 3); an agent needs the server's
    "now" only to turn a due time such as ``next_due_ms`` into how long to block. Each
    observation pairs a server timestamp with the local monotonic midpoint of the call that
    returned it.
    """

    def __init__(self) -> None:
        self._offset_ms: float | None = None
        self._lock = threading.Lock()

    @staticmethod
    def local_ms() -> float:
        return time.monotonic() * 1000

    def observe(self, server_ms: int, sent_local_ms: float, received_local_ms: float) -> None:
        """Record that the server's clock read ``server_ms`` during a call sent and answered at these local times."""
        with self._lock:
            self._offset_ms = server_ms - (sent_local_ms + received_local_ms) / 2

    def until(self, server_ms: int) -> float:
        """Milliseconds from now until the server's clock reads ``server_ms`` (0 when unknown or past)."""
        if self._offset_ms is None:
            return 0.0
        return max(0.0, server_ms - (self.local_ms() + self._offset_ms))


class EventFollower:
    """Follows a namespace's event stream (asyncio) with XREAD BLOCK from the newest entry at
    :meth:`start`: nothing appended after start() is missed. Since 2.0 the stream is the only
    notification of a transition (no Pub/Sub message per event); waiters that read a record
    call start() first, then read, then block with :meth:`next`."""

    #: Longest single XREAD BLOCK (ms); next() returns [] after it and the caller blocks again.
    BLOCK_MS = 5_000

    def __init__(self, client: redis.asyncio.Redis, namespace: str) -> None:
        self.client = client
        self.stream = keys.events(namespace)
        self.last_id = "0-0"

    async def start(self) -> None:
        """Remember the stream's newest entry: next() returns the entries after it."""
        newest = range_entries(await self.client.xrevrange(self.stream, count=1))
        self.last_id = newest[0][0] if newest else "0-0"

    async def next(self, timeout_s: float) -> list[dict[str, str]]:
        """The fields of the events after the last ones returned, blocking up to ``timeout_s``
        (at most BLOCK_MS); [] when none came."""
        block = max(1, min(int(timeout_s * 1000), self.BLOCK_MS))
        try:
            reply = await xread_blocking(self.client, {self.stream: self.last_id}, block, 100)
        except redis.TimeoutError:
            return []
        entries = xread_entries(reply)
        if entries:
            self.last_id = entries[-1][0]
        return [fields for _, fields in entries]
