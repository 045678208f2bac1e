"""Blocking reads (``XREAD BLOCK``) that last their block time and are sent exactly once.

redis-py applies the connection's ``socket_timeout`` to every reply (5 s by default since
redis-py 8) and, through its ``Retry`` (10 attempts by default since 8; 3 since 6), sends a
command again after a TimeoutError. A blocking read sent through ``execute_command`` therefore
either fails after the socket timeout or, worse, is re-sent and blocks again from scratch: an
``XREAD BLOCK 7000`` took 58 s, then raised. So agentfn sends its blocking reads itself, on a
connection of the client's pool: once, never retried, and waits for the reply up to the block
time plus a margin (the connection's socket timeout, else REPLY_MARGIN_S). A read whose reply
does not come by then drops its connection, so a late reply never reaches the next command.
See docs/ARCHITECTURE.md "Timeouts and retries".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any

import redis
import redis.asyncio
import redis.cluster

#: How long past its BLOCK time a read waits for the reply on a connection without a socket
#: timeout (s): a server that does not answer by then is taken as gone.
REPLY_MARGIN_S = 5.0


def reply_deadline_s(connection: Any, block_ms: float) -> float:
    """Seconds to wait for the reply of a read that blocks ``block_ms`` on ``connection``."""
    return block_ms / 1000 + (connection.socket_timeout or REPLY_MARGIN_S)


def xread_args(streams: Mapping[str, str], block_ms: int, count: int) -> list[Any]:
    """``XREAD COUNT count BLOCK block_ms STREAMS ...`` (BLOCK at least 1: 0 means forever)."""
    block = max(1, int(block_ms))
    return ["XREAD", "COUNT", count, "BLOCK", block, "STREAMS", *streams, *streams.values()]


def _parsed(client: Any, command: str, reply: Any) -> Any:
    """The reply as ``client.execute_command`` would return it (the client's response callback)."""
    callback = client.response_callbacks.get(command)
    return callback(reply) if callback is not None else reply


def _timed_out(command: str, deadline_s: float) -> redis.TimeoutError:
    return redis.TimeoutError(f"no reply to {command} within {deadline_s:g} s")


def checkout(pool: Any, command: str = "XREAD") -> Any:
    """A connection from ``pool`` (redis-py before 5.3 requires the name of the command it is
    for; later versions take none)."""
    try:
        return pool.get_connection()
    except TypeError:
        return pool.get_connection(command)


def blocking_call(client: redis.Redis, block_ms: int, *args: Any) -> Any:
    """Send the blocking command ``args`` (which blocks up to ``block_ms``) once and return its
    reply, or raise redis.TimeoutError when none came within reply_deadline_s."""
    if isinstance(client, redis.cluster.RedisCluster):  # the node serving the first key
        client = client.get_node_from_key(args[args.index("STREAMS") + 1]).redis_connection
    pool = client.connection_pool
    connection = client.connection or checkout(pool)
    try:
        connection.send_command(*args)
        deadline_s = reply_deadline_s(connection, block_ms)
        if not connection.can_read(timeout=deadline_s):
            raise _timed_out(args[0], deadline_s)
        reply = connection.read_response()
    except redis.ResponseError:
        raise
    except BaseException:
        connection.disconnect()  # a late reply must not be read as the next command's
        raise
    finally:
        if client.connection is None:
            pool.release(connection)
    return _parsed(client, args[0], reply)


async def _checkout_async(pool: Any) -> Any:
    try:
        return await pool.get_connection()
    except TypeError:  # redis-py < 5.3 requires a command name
        return await pool.get_connection("XREAD")


async def blocking_call_async(client: redis.asyncio.Redis, block_ms: int, *args: Any) -> Any:
    """The asyncio twin of blocking_call."""
    pool = client.connection_pool
    connection = client.connection or await _checkout_async(pool)
    deadline_s = reply_deadline_s(connection, block_ms)
    try:
        await connection.send_command(*args)
        # The read's own timeout (later) never fires first: the deadline is wait_for's.
        reading = connection.read_response(timeout=deadline_s + 1)
        reply = await asyncio.wait_for(reading, deadline_s)
    except redis.ResponseError:
        raise
    except asyncio.TimeoutError:
        await connection.disconnect()
        raise _timed_out(args[0], deadline_s) from None
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        if client.connection is None:
            await pool.release(connection)
    return _parsed(client, args[0], reply)


def xread_blocking(
    client: Any, streams: Mapping[str, str], block_ms: int, count: int = 100
) -> Any | Awaitable[Any]:
    """The XREAD reply (for replies.xread_entries) of entries after ``streams`` ({key: id}),
    blocking up to ``block_ms``: a value for a redis.Redis or RedisCluster, an awaitable for a
    redis.asyncio.Redis. Raises redis.TimeoutError when the server does not answer in time."""
    args = xread_args(streams, block_ms, count)
    if isinstance(client, redis.asyncio.Redis):
        return blocking_call_async(client, block_ms, *args)
    return blocking_call(client, block_ms, *args)
