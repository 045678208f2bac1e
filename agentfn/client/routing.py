"""Where a namespace's commands go: one server, or the primary serving the namespace's slot.

Every key of a namespace shares the hash tag ``{ns}``, so on Redis Cluster a namespace lives in
one slot, on one primary. A ``Route`` hands out a plain ``redis.Redis`` (or ``redis.asyncio.Redis``)
connected to that primary, so that FCALLs, pipelines (Batch, the runtime's "complete and claim
next"), blocking XREADs and heartbeats all go straight to the owner. redis-py's RedisCluster is
used only for its slot map: its own FCALL routing asks ``COMMAND GETKEYS`` of a default node,
which fails for every namespace when that one node is down.

On a redirect (MOVED), a cluster that is down or reconfiguring (CLUSTERDOWN, TRYAGAIN) or a
connection error, the caller asks the route to ``reroute()`` (refresh the slot map) and, within
``ROUTE_DEADLINE_S``, tries again. ASK is never followed: the namespace's slot is being moved,
and while it is, every FCALL is answered ASK by the old owner (the root key ``agentfn:{ns}``
never exists, so it counts as already moved) and must not run on the new owner against a
half-moved namespace (there, the library refuses with MOVING before any write anyway). Calls
wait (bounded) until the move ends and MOVED names the new owner; then NamespaceMoving.

With a ``Durability`` (``Client(..., wait_replicas=N)``) each write FCALL is followed, on the
same connection, by ``WAIT N timeout``; too few acknowledgements raise NotReplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from ..errors import NamespaceMoving, NotReplicated

#: How long one call keeps retrying while its namespace's slot moves or the cluster fails over (s).
ROUTE_DEADLINE_S = 30.0

#: Longest pause between two retries of a call (s).
MAX_ROUTE_PAUSE_S = 0.5

CLUSTER_TYPES = (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)

#: Errors after which the call certainly did not run: reroute and send it again.
NOT_RUN_ERRORS = (MovedError, AskError, TryAgainError, ClusterDownError, NamespaceMoving)


def not_run(error: object) -> bool:
    """The call was refused before it ran: redirected, the cluster down or reconfiguring, or the
    library's MOVING (its node imports or exports the namespace's slot). Safe to send again."""
    if isinstance(error, NOT_RUN_ERRORS):
        return True
    return isinstance(error, redis.ResponseError) and str(error).startswith("MOVING ")


def _moving(error: BaseException) -> bool:
    return not isinstance(error, MovedError) and (
        isinstance(error, (AskError, TryAgainError, NamespaceMoving))
        or str(error).startswith("MOVING ")
    )


def is_cluster(connection: Any) -> bool:
    return isinstance(connection, CLUSTER_TYPES)


def describe(error: BaseException) -> str:
    """One line naming what happened: redis-py drops the word MOVED/ASK from its messages."""
    if isinstance(error, AskError):  # MovedError is an AskError
        word = "MOVED" if isinstance(error, MovedError) else "ASK"
        return f"{word} slot {error.slot_id} is served by {error.host}:{error.port}"
    if isinstance(error, TryAgainError):
        return f"TRYAGAIN {error}".strip()
    if isinstance(error, ClusterDownError):
        text = str(error)
        return text if text.startswith("CLUSTERDOWN") else f"CLUSTERDOWN {text}".strip()
    return str(error)


class Retries:
    """The retry budget of one call: ``pause(error)`` says how long to wait before sending it
    again, or raises when the budget is spent (NamespaceMoving for a slot move, else the error)."""

    def __init__(self, deadline_s: float | None = None) -> None:
        self._deadline = time.monotonic() + (ROUTE_DEADLINE_S if deadline_s is None else deadline_s)
        self._pause = 0.0

    def pause(self, error: BaseException, where: str) -> float:
        if isinstance(error, MovedError) and self._pause == 0.0:
            self._pause = 0.001  # the first MOVED: the new owner is known, go at once
            return 0.0
        self._pause = min(MAX_ROUTE_PAUSE_S, self._pause * 2 or 0.01)
        if time.monotonic() + self._pause > self._deadline:
            if _moving(error):
                raise NamespaceMoving(
                    f"the slot of {where} is still being moved ({describe(error)}); try again"
                ) from None
            raise error
        return self._pause


@dataclass(frozen=True)
class Durability:
    """Each write waits for ``replicas`` replicas to acknowledge it (WAIT), up to ``timeout_ms``."""

    replicas: int
    timeout_ms: int = 1000

    def wait_command(self) -> list[Any]:
        return ["WAIT", self.replicas, self.timeout_ms]

    def queue_wait(self, pipe: Any) -> None:
        """Add WAIT to a pipeline, after its writes (agentfn acl grants +wait from this line)."""
        pipe.execute_command("WAIT", self.replicas, self.timeout_ms)

    def check(self, acknowledged: Any, where: str, reply: Any = None) -> None:
        """NotReplicated (carrying the write's ``reply``) unless WAIT counts enough replicas."""
        if isinstance(acknowledged, Exception):
            raise acknowledged
        if int(acknowledged) < self.replicas:
            error = NotReplicated(
                f"the write ran on {where} but {int(acknowledged)} of {self.replicas} replicas "
                f"acknowledged it within {self.timeout_ms} ms"
            )
            error.reply = reply
            raise error


class Route:
    """The connection that serves one key's slot: the server itself, or its cluster primary."""

    durability: Durability | None = None
    deadline_s: float = ROUTE_DEADLINE_S
    """How long one call keeps retrying while the slot moves or the cluster fails over."""

    def __init__(self, connection: Any, key: str) -> None:
        self.key = key
        self.cluster = connection if is_cluster(connection) else None
        self.is_async = isinstance(
            connection, (redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster)
        )
        self._single = None if self.cluster is not None else connection
        self._owner: Any = None
        pool = getattr(connection, "connection_pool", None)
        self.fails_over = self.cluster is not None or isinstance(
            pool,
            (redis.sentinel.SentinelConnectionPool, redis.asyncio.sentinel.SentinelConnectionPool),
        )
        """A cluster or a Sentinel-managed primary: connection errors are retried (bounded)."""

    @property
    def redis(self) -> Any:
        """A redis.Redis (or redis.asyncio.Redis) connected to the owner of the key's slot."""
        if self._single is not None:
            return self._single
        if self._owner is None:
            self._owner = self._resolve()
        return self._owner

    @property
    def address(self) -> str:
        """host:port of the server the commands go to (for error messages)."""
        kwargs = self.redis.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    def connection_kwargs(self) -> dict[str, Any]:
        if self.cluster is not None:
            return dict(self.cluster.get_connection_kwargs())
        return dict(self.redis.get_connection_kwargs())

    def _resolve(self) -> Any:
        try:
            return self._owner_client()
        except RedisClusterException as error:  # e.g. no node serves the slot right now
            raise redis.ConnectionError(f"no node serves {self.key} now: {error}") from None

    def _owner_client(self) -> Any:
        assert self.cluster is not None
        if not self.is_async:
            return self.cluster.get_node_from_key(self.key).redis_connection
        manager = self.cluster.nodes_manager
        if manager.slots_cache:
            node = self.cluster.get_node_from_key(self.key)
        else:  # not initialized yet: any startup node until the first call resolves the owner
            node = next(iter(manager.startup_nodes.values()))
        pool = redis.asyncio.ConnectionPool(
            connection_class=node.connection_class, **node.connection_kwargs
        )
        return redis.asyncio.Redis(connection_pool=pool)

    def reroute(self) -> None:
        """Forget the owner and refresh the cluster's slot map (sync clusters)."""
        if self.cluster is None:
            return
        self._owner = None
        # No node reachable right now: the next call tries again.
        with contextlib.suppress(redis.RedisError, RedisClusterException):
            self.cluster.nodes_manager.initialize()

    async def reroute_async(self) -> None:
        if self.cluster is None:
            return
        self._owner = None
        with contextlib.suppress(redis.RedisError, RedisClusterException):
            await self.cluster.nodes_manager.initialize()

    async def ensure_async(self) -> None:
        """Initialize an asyncio cluster's slot map before the first call."""
        if self.cluster is not None and not self.cluster.nodes_manager.slots_cache:
            await self.cluster.initialize()
            self._owner = None

    def _durable(self, args: tuple[Any, ...]) -> Durability | None:
        return self.durability if args[0] == "FCALL" else None

    def _send(self, args: tuple[Any, ...]) -> Any:
        durability = self._durable(args)
        if durability is None:
            return self.redis.execute_command(*args)
        pipe = self.redis.pipeline(transaction=False)  # WAIT counts this connection's writes
        pipe.execute_command(*args)
        durability.queue_wait(pipe)
        reply, acknowledged = pipe.execute(raise_on_error=False)
        if isinstance(reply, Exception):
            raise reply
        durability.check(acknowledged, self.address, reply)
        return reply

    async def _send_async(self, args: tuple[Any, ...]) -> Any:
        durability = self._durable(args)
        if durability is None:
            return await self.redis.execute_command(*args)
        pipe = self.redis.pipeline(transaction=False)
        pipe.execute_command(*args)
        durability.queue_wait(pipe)
        reply, acknowledged = await pipe.execute(raise_on_error=False)
        if isinstance(reply, Exception):
            raise reply
        durability.check(acknowledged, self.address, reply)
        return reply

    def execute(self, *args: Any) -> Any:
        """Send one command to the owner; reroute and resend on the errors after which it did not
        run; a dropped connection is rerouted but not resent (the command may have run)."""
        retries = Retries(self.deadline_s)
        while True:
            try:
                return self._send(args)
            except redis.ResponseError as error:
                if not not_run(error):
                    raise
                wait = retries.pause(error, self.key)
                if isinstance(error, (MovedError, ClusterDownError)):
                    self.reroute()
                if wait:
                    time.sleep(wait)
            except redis.ConnectionError as error:
                self._after_connection_error(error, retries, args[0] == "FCALL_RO")

    async def execute_async(self, *args: Any) -> Any:
        await self.ensure_async()
        retries = Retries(self.deadline_s)
        while True:
            try:
                return await self._send_async(args)
            except redis.ResponseError as error:
                if not not_run(error):
                    raise
                wait = retries.pause(error, self.key)
                if isinstance(error, (MovedError, ClusterDownError)):
                    await self.reroute_async()
                if wait:
                    await asyncio.sleep(wait)
            except redis.ConnectionError as error:
                if not self.fails_over or not (args[0] == "FCALL_RO" or _while_connecting(error)):
                    await self.reroute_async()
                    raise
                await asyncio.sleep(retries.pause(error, self.key))
                await self.reroute_async()

    def _after_connection_error(
        self, error: RedisConnectionError, retries: Retries, read_only: bool
    ) -> None:
        """Reroute; retry a read, or a write that never left (the connection could not be made)."""
        if not self.fails_over or not (read_only or _while_connecting(error)):
            self.reroute()
            raise error
        time.sleep(retries.pause(error, self.key))
        self.reroute()


def _while_connecting(error: Exception) -> bool:
    """The error came from opening the connection (or finding the primary), so the command was
    not sent."""
    return "connecting to" in str(error) or isinstance(error, redis.sentinel.MasterNotFoundError)
