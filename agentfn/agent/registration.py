"""Registering at start while another registration still holds the agent id.

Since protocol 3.0 an agent id is owned, while it is live, by the secret it registered with, and
each run of an agent registers with a fresh secret (the secret lives only in that process). A
process that restarts under the same id (a container restart keeps ``<host>-<pid>``) finds the
old registration live and is refused (DENIED) until it lapses or is deregistered. The runtime
then waits for that, blocking on the namespace's event stream (XREAD BLOCK, no polling) until
the old record's liveness deadline (which the refusal names) or an ``agent.lapsed`` /
``agent.deregistered`` event of the id, whichever comes first, and registers again; it gives up
after ``register_wait_s`` seconds (raising DENIED, in words). A refusal that names a later
deadline than the one waited for means the other registration heartbeats: another process is
serving the id right now, which is logged once. A stop requested meanwhile (SIGTERM, Ctrl-C,
``agent.stop()``) ends the wait within ``STOP_CHECK_S``: the block is cut in slices that short,
since a signal handler may not send CLIENT UNBLOCK (it could need the pool its own thread holds).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import TimeoutError

from .. import keys
from ..client.blocking import xread_blocking
from ..errors import Denied
from ..replies import as_text, xread_entries

log = logging.getLogger("agentfn.agent")

#: The liveness deadline (server ms) that agentfn_agent_register's refusal names.
_DEADLINE = re.compile(r"until (\d+)")

#: The events that end a registration.
_ENDED = {"agent.lapsed", "agent.deregistered"}

#: Longest single block of the wait (s): how soon a requested stop ends it.
STOP_CHECK_S = 0.5


def register_waiting(
    client: Any,
    agent_id: str,
    register: Callable[[], None],
    wait_s: float,
    stopping: Callable[[], bool] = lambda: False,
) -> bool:
    """Call ``register``; while it is refused because ``agent_id`` is live under another secret,
    wait (at most ``wait_s`` seconds in all) for that registration to end, then try again.

    Returns True once registered, False when ``stopping()`` became true first (nothing was
    registered); raises Denied, naming the wait, when the other registration outlived it."""
    give_up = time.monotonic() + wait_s
    events = keys.events(client.namespace)
    last_id: str | None = None
    waited_for: int | None = None  # the deadline of the refusal the last wait ended at
    heartbeats_logged = False
    while not stopping():
        try:
            register()
            return True
        except Denied as error:
            if last_id is None:  # note the stream's newest event, then try again: none is missed
                newest = client.redis.xrevrange(events, count=1)
                last_id = as_text(newest[0][0]) if newest else "0-0"
                continue
            remaining_ms = (give_up - time.monotonic()) * 1000
            if remaining_ms <= 0:
                raise _gave_up(agent_id, wait_s) from error
            until_ms = _deadline(error)
            server_ms = _server_ms(client)
            if waited_for is None:
                log.warning(
                    "agent %s is registered by another process (one that did not deregister, or "
                    "one serving this id now) until %s unless it heartbeats; waiting up to %.0f s "
                    "for that registration to lapse or deregister",
                    agent_id,
                    _in_words(until_ms, server_ms),
                    wait_s,
                )
            elif until_ms is not None and until_ms > waited_for and not heartbeats_logged:
                log.warning(
                    "agent %s: the other registration heartbeats (its deadline moved on): another "
                    "process is serving this id; stop it, or give this agent another id "
                    "(agentfn worker --agent-id); still waiting, %.0f s at most",
                    agent_id,
                    remaining_ms / 1000,
                )
                heartbeats_logged = True
            waited_for = until_ms if until_ms is not None else -1
            last_id = _await_end(
                client, agent_id, until_ms, server_ms, remaining_ms, last_id, stopping
            )
    return False


def _deadline(error: Denied) -> int | None:
    match = _DEADLINE.search(error.message)
    return int(match[1]) if match else None


def _server_ms(client: Any) -> int:
    seconds, microseconds = client.redis.time()
    return int(seconds) * 1000 + int(microseconds) // 1000


def _in_words(until_ms: int | None, server_ms: int) -> str:
    if until_ms is None:
        return "it lapses"
    return f"its deadline in {max(0, until_ms - server_ms) / 1000:.1f} s"


def _gave_up(agent_id: str, wait_s: float) -> Denied:
    return Denied(
        f"agent {agent_id} is still live under another secret after {wait_s:.0f} s of waiting "
        "(Agent register_wait_s): another process is serving this id, or its registration "
        "outlives the wait; stop that process, or give this agent another id "
        "(agentfn worker --agent-id)"
    )


def _await_end(
    client: Any,
    agent_id: str,
    until_ms: int | None,
    server_ms: int,
    remaining_ms: float,
    last_id: str,
    stopping: Callable[[], bool],
) -> str:
    """Block until the refused registration's deadline (``until_ms``; None: wait for an event),
    an event after ``last_id`` that ends it, ``remaining_ms`` or a stop, whichever comes first;
    returns the last event id read."""
    redis = client.redis
    until = until_ms if until_ms is not None else server_ms + int(remaining_ms)
    local_deadline = time.monotonic() + min(remaining_ms, max(0, until - server_ms) + 1) / 1000
    stream = keys.events(client.namespace)
    while not stopping() and (left := local_deadline - time.monotonic()) > 0:
        block_ms = max(1, int(min(left, STOP_CHECK_S) * 1000))
        try:
            reply = xread_blocking(redis, {stream: last_id}, block_ms)
        except TimeoutError:  # the server did not answer within the block and a margin
            continue
        for entry_id, fields in xread_entries(reply):
            last_id = entry_id
            if fields.get("type") in _ENDED and fields.get("agent") == agent_id:
                return last_id
    return last_id
