"""Socket timeouts and redis-py's Retry: a blocking read lasts its block time whatever the
connection's socket_timeout and is sent once; a write is never re-sent after a timeout.

The clients here have a socket timeout of 0.3 s and a Retry that re-sends on TimeoutError (what
redis-py 6+ does by default), so that the tests fail on any redis-py without agentfn's handling.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

import agentfn
from agentfn.client.waiting import wait_for_work

from .helpers import server_ms, wait_until

SOCKET_TIMEOUT_S = 0.3


def xread_calls(r: redis.Redis) -> int:
    return int(r.info("commandstats").get("cmdstat_xread", {}).get("calls", 0))


def blocked_xread_ids(r: redis.Redis) -> set[str]:
    return {c["id"] for c in r.client_list() if c["cmd"] == "xread" and "b" in c["flags"]}


def wait_until_blocked(r: redis.Redis) -> str:
    """The id of the connection blocked in XREAD, once there is one (CLIENT LIST)."""
    for _ in range(1000):
        if blocked := blocked_xread_ids(r):
            return blocked.pop()
        r.blpop(["agentfn-test:never"], timeout=0.005)
    raise AssertionError("no XREAD ever blocked")


def land_entry_after_the_socket_timeout(client: agentfn.Client, r: redis.Redis) -> None:
    """With the read blocked: wait (on the server's clock) past the socket timeout, check that
    the same connection still blocks, then submit the entry that wakes it."""
    blocked = wait_until_blocked(r)
    wait_until(r, server_ms(r) + int(SOCKET_TIMEOUT_S * 2000))
    assert blocked in blocked_xread_ids(r)  # not dropped by a socket timeout, nor re-sent
    client.submit("job", {})


def short_timeout_options() -> dict[str, Any]:
    return {"socket_timeout": SOCKET_TIMEOUT_S, "retry": Retry(NoBackoff(), 3)}


def test_a_blocking_wait_outlasts_a_short_socket_timeout_and_is_sent_once(client, r, redis_proc):
    client.agent_register("w", ["job"])
    empty = client.claim("w")
    short = redis.Redis(host=redis_proc.host, port=redis_proc.port, **short_timeout_options())
    results: list[Any] = []
    calls = xread_calls(r)
    waiter = threading.Thread(target=lambda: results.append(wait_for_work(short, empty, 10_000)))
    waiter.start()
    try:
        land_entry_after_the_socket_timeout(client, r)
    finally:
        waiter.join(15)
        short.close()
    assert results == [True]
    assert xread_calls(r) - calls == 1


def test_an_asyncio_blocking_wait_outlasts_a_short_socket_timeout(client, r, redis_proc):
    client.agent_register("w", ["job"])
    empty = client.claim("w")
    calls = xread_calls(r)

    async def main() -> bool:
        short = redis.asyncio.Redis(
            host=redis_proc.host, port=redis_proc.port, **short_timeout_options()
        )
        try:
            waiting = asyncio.ensure_future(wait_for_work(short, empty, 10_000))
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, land_entry_after_the_socket_timeout, client, r)
            return await waiting
        finally:
            await short.aclose()

    assert asyncio.run(main()) is True
    assert xread_calls(r) - calls == 1


#: A script that keeps the server busy (nothing else runs meanwhile) for longer than the socket timeout.
STALL = """
local function now_us() local t = redis.call('TIME') return t[1] * 1000000 + t[2] end
local start = now_us()
while now_us() - start < 1500000 do end
return 1
"""


def test_a_submit_to_a_stalled_server_is_sent_once(deployed, r, redis_url):
    """The server is busy (a long script) for longer than the socket timeout when a submit
    arrives: the submit times out on the client but runs once the server is free. redis-py's
    Retry would have sent it again, each copy a task; agentfn.connect sends it once."""
    connection = agentfn.connect(redis_url, socket_timeout=SOCKET_TIMEOUT_S)
    submitter = agentfn.Client(connection, "default")
    submitter.check_library()
    kwargs = r.connection_pool.connection_kwargs
    stall = redis.Connection(host=kwargs["host"], port=kwargs["port"], socket_timeout=10)
    stall.connect()
    connections = r.info("stats")["total_connections_received"]
    stall.send_command("EVAL", STALL, 0)  # runs before the submit that follows it
    timed_out = False
    try:
        submitter.submit("job", {"n": 1})
    except redis.TimeoutError:  # the server was busy: the submit may have run (here, later)
        timed_out = True
    finally:
        assert stall.read_response() == 1  # the stall is over: the submit, sent before, ran
        stall.disconnect()
        connection.close()
    assert timed_out
    # Sent once: no reconnection to send it again (redis-py's Retry reconnects for each copy).
    assert r.info("stats")["total_connections_received"] == connections
    client = agentfn.Client(r, "default")
    client.agent_register("w", ["job"])
    assert len(client.claim("w", count=10).tasks) == 1
