"""An agent's mailroom: serves its message handlers (``@agent.on_message(type)``).

One thread reads the agent's inbox (agentfn_msg_read: unacknowledged messages first, then new
ones), calls the handler of each message's type, sends a non-None return value back to the
sender as a reply (``reply_to`` the message), and acknowledges the messages it handled with its
next read (the read's ACK option: no round trip of its own). With an empty inbox it blocks in
``XREAD BLOCK`` on a connection of its own from the id the read returned (no lost wake-up),
never longer than the heartbeat interval. Messages are handled one at a time, in order; async
handlers run on the agent's event loop.

A handler that raises is logged and answered with ``{"error": "<Type>: <message>"}``; a message
type without a handler is logged and acknowledged: the mailroom owns the inbox.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

import redis

from .api.messages import Message
from .executors import error_text
from .waiting import BlockingConnection, wait_on_streams

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("agentfn.agent")

#: Messages read at a time.
READ_BATCH = 10

#: Pause before reading again after a connection error (s).
RETRY_PAUSE_S = 1.0


class Mailroom:
    """The message-handling thread of one running agent."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._connection = BlockingConnection(runtime.client.redis)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentfn-mailroom", daemon=True)

    def start(self) -> None:
        self._connection.refresh_id()
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._connection.unblock()
        self._thread.join(timeout=5)
        self._connection.close()

    def _run(self) -> None:
        runtime = self._runtime
        handled: list[str] = []  # acknowledged by the next read (its ACK option), or at the end
        while not self._closed.is_set() and not runtime.stopping:
            try:
                read = runtime.client.read_inbox(runtime.agent_id, READ_BATCH, ack=handled)
                handled = []
                for message in read.messages:
                    if self._closed.is_set() or runtime.stopping:
                        break  # the rest stay unacknowledged: they come back on the next read
                    self._handle(message)
                    handled.append(message.id)
                if not read.messages:
                    wait_on_streams(self._connection.redis, {read.wait_stream: read.wait_id},
                                    runtime.agent.heartbeat_interval_ms)
            except redis.ConnectionError as error:  # `handled` is acknowledged again: harmless
                log.warning("agent %s: reading the inbox failed: %s", runtime.agent_id, error)
                self._connection.refresh_id()
                self._closed.wait(RETRY_PAUSE_S)
        if handled:
            try:
                runtime.client.ack(runtime.agent_id, *handled)
            except redis.RedisError as error:
                log.warning("agent %s: acknowledging handled messages failed (they come back): %s",
                            runtime.agent_id, error)

    def _handle(self, message: Message) -> None:
        runtime = self._runtime
        client = runtime.client
        handler = runtime.agent.message_handlers.get(message.type)
        reply: Any = None
        if handler is None:
            log.warning("agent %s: no handler for message type %r (message %s from %s)", runtime.agent_id,
                        message.type, message.id, message.sender)
        else:
            try:
                reply = self._call(handler, message)
            except Exception as error:
                log.exception("agent %s: handler of message %s failed", runtime.agent_id, message.id)
                reply = {"error": error_text(error)}
        if reply is not None:
            try:
                client.send(runtime.agent_id, message.sender, message.type, reply, reply_to=message.id,
                            allow_unregistered=True)
            except (TypeError, ValueError) as error:
                log.error("agent %s: reply to message %s is not JSON-serialisable: %s", runtime.agent_id,
                          message.id, error)

    def _call(self, handler: Any, message: Message) -> Any:
        if not handler.is_async:
            return handler.function(message)
        loop = self._runtime.async_executor().loop
        return asyncio.run_coroutine_threadsafe(handler.function(message), loop).result()
