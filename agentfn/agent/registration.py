"""Registering at start while a previous process still holds the agent id.

Since protocol 3.0 an agent id is owned, while it is live, by the secret it registered with, and
each run of an agent registers with a fresh secret (the secret lives only in that process). A
process that restarts under the same id (a container restart keeps ``<host>-<pid>``) finds the
old registration live and is refused (DENIED) until it lapses or is deregistered. The runtime
then waits for that, blocking on the namespace's event stream (XREAD BLOCK, no polling) until
the old record's liveness deadline (which the refusal names) or an ``agent.lapsed`` /
``agent.deregistered`` event of the id, whichever comes first, and registers again; it gives up
after ``register_wait_s`` seconds (the refusal is raised).
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


def register_waiting(
    client: Any, agent_id: str, register: Callable[[], None], wait_s: float
) -> None:
    """Call ``register``; while it is refused because ``agent_id`` is live under another secret,
    wait (at most ``wait_s`` seconds in all) for that registration to end, then try again."""
    give_up = time.monotonic() + wait_s
    events = keys.events(client.namespace)
    last_id: str | None = None
    logged = False
    while True:
        try:
            register()
            return
        except Denied as error:
            if last_id is None:  # note the stream's newest event, then try again: none is missed
                newest = client.redis.xrevrange(events, count=1)
                last_id = as_text(newest[0][0]) if newest else "0-0"
                continue
            remaining_ms = (give_up - time.monotonic()) * 1000
            if remaining_ms <= 0:
                raise
            if not logged:
                log.warning(
                    "agent %s is still registered by a previous process; waiting up to %.0f s "
                    "for it to lapse or deregister",
                    agent_id,
                    wait_s,
                )
                logged = True
            last_id = _await_end(client, agent_id, error, remaining_ms, last_id)


def _await_end(client: Any, agent_id: str, error: Denied, remaining_ms: float, last_id: str) -> str:
    """Block until the refused registration's deadline, an event after ``last_id`` that ends
    it, or ``remaining_ms``, whichever comes first; returns the last event id read."""
    redis = client.redis
    seconds, microseconds = redis.time()
    server_ms = seconds * 1000 + microseconds // 1000
    match = _DEADLINE.search(error.message)  # none: wait for an event, up to remaining_ms
    until_ms = int(match[1]) if match else server_ms + int(remaining_ms)
    local_deadline = time.monotonic() + min(remaining_ms, max(0, until_ms - server_ms) + 1) / 1000
    stream = keys.events(client.namespace)
    while (block_ms := int((local_deadline - time.monotonic()) * 1000)) > 0:
        try:
            reply = xread_blocking(redis, {stream: last_id}, block_ms)
        except TimeoutError:  # the server did not answer within the block and a margin
            continue
        for entry_id, fields in xread_entries(reply):
            last_id = entry_id
            if fields.get("type") in _ENDED and fields.get("agent") == agent_id:
                return last_id
    return last_id
