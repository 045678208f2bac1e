"""An agent's mailroom: serves its message handlers (``@agent.on_message(type)``) and hands
replies over to the agent's requests (``agent.request``).

One thread reads the agent's inbox (agentfn_msg_read: unacknowledged messages first, then new
ones), calls the handler of each message's type, sends a non-None return value back to the
sender as a reply (``reply_to`` the message), and acknowledges the messages it handled with its
next read (the read's ACK option: no round trip of its own). With an empty inbox it blocks in
``XREAD BLOCK`` on a connection of its own from the id the read returned (no lost wake-up),
never longer than the heartbeat interval. Messages are handled one at a time, in order; async
handlers run on the agent's event loop. It serves until the agent shuts down (after the grace
period), so that requests of task handlers finishing in the grace period get their replies.

A handler that raises is logged and answered with ``{"error": "<Type>: <message>"}``; a message
type without a handler is logged and acknowledged: the mailroom owns the inbox.

Replies (messages with ``reply_to`` set) never reach a handler, so a reply is never answered
(two agents with a handler for the same type cannot bounce one back and forth). A reply goes to
the ``agent.request`` waiting for it: the request registers its waiter under the request id in
the same critical section as the send, and the mailroom looks a reply's waiter up under that
lock, so a reply read before its send returned waits for the registration instead of being
missed. A reply nobody waits for (it came after its request timed out, or the request was made
by an earlier run) is acknowledged like any handled message and logged at debug level. A
message handler's own requests read the inbox directly, as ``client.request`` does: the
mailroom waits for that handler, so it could not hand their replies over.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from ..client.api.messages import Message, no_reply
from ..client.waiting import BlockingConnection, wait_on_streams
from .executors import error_text
from .recovery import Recovery, run_thread
from .tracing import message_span

if TYPE_CHECKING:
    from .services import RuntimeServices

log = logging.getLogger("agentfn.agent")

#: Messages read at a time.
READ_BATCH = 10

#: The message whose handler runs in this context (the handler's thread or its asyncio task).
_HANDLING: contextvars.ContextVar[Message | None] = contextvars.ContextVar(
    "agentfn_handling", default=None
)


class Mailroom:
    """The message-handling thread of one running agent."""

    def __init__(self, runtime: RuntimeServices) -> None:
        self._runtime = runtime
        self._connection = BlockingConnection(runtime.client.redis)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentfn-mailroom", daemon=True)
        self._waiters: dict[str, Callable[[Message], Any]] = {}
        """Request id -> what takes its reply; guarded by _waiters_lock, held across the send."""
        self._waiters_lock = threading.Lock()
        self._handling: Message | None = None
        """The message whose handler runs now."""

    def start(self) -> None:
        self._connection.refresh_id()
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._connection.stop_thread(self._thread, timeout_s=5)
        self._connection.close()

    def _run(self) -> None:
        run_thread(self._runtime, "the mailroom", self._serve)

    def _serve(self) -> None:
        runtime = self._runtime
        recovery = Recovery(runtime, "reading the inbox")
        handled: list[str] = []  # acknowledged by the next read (its ACK option), or at the end
        while not self._closed.is_set():
            try:
                read = runtime.client.read_inbox(runtime.agent_id, READ_BATCH, ack=handled)
                handled = []
                for message in read.messages:
                    if self._closed.is_set():
                        break  # the rest stay unacknowledged: they come back on the next read
                    self._handle(message)
                    handled.append(message.id)
                if not read.messages:
                    wait_on_streams(
                        self._connection.redis,
                        {read.wait_stream: read.wait_id},
                        runtime.agent.heartbeat_interval_ms,
                    )
                recovery.succeeded()
            except Exception as error:  # noqa: BLE001 - `handled` is acknowledged again: harmless
                if self._closed.is_set():
                    break
                if isinstance(error, redis.ConnectionError):
                    self._connection.refresh_id()
                self._closed.wait(recovery.failed(error))
        if handled:
            try:
                runtime.client.ack(runtime.agent_id, *handled)
            except redis.RedisError as error:
                log.warning(
                    "agent %s: acknowledging handled messages failed (they come back): %s",
                    runtime.agent_id,
                    error,
                )

    def takes_replies(self) -> bool:
        """True when a request of the agent made here should wait for the mailroom to hand its
        reply over: the mailroom still runs and the caller is not the handler it waits for."""
        handling = _HANDLING.get()
        return not self._closed.is_set() and (handling is None or handling is not self._handling)

    def request(self, send: Callable[[], str], to: str, timeout: float) -> Message:
        """Send a request (``send()`` returns its id) and wait up to ``timeout`` s for its reply."""
        replies: queue.SimpleQueue[Message] = queue.SimpleQueue()
        request_id = self._send(send, replies.put)
        try:
            return replies.get(timeout=timeout)
        except queue.Empty:
            raise no_reply(to, request_id, timeout) from None
        finally:
            self._forget(request_id)

    async def request_async(self, send: Callable[[], str], to: str, timeout: float) -> Message:
        """:meth:`request` for a coroutine (the send runs in a thread)."""
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Message] = loop.create_future()
        request_id = await asyncio.to_thread(
            self._send, send, lambda message: loop.call_soon_threadsafe(_resolve, reply, message)
        )
        try:
            return await asyncio.wait_for(reply, timeout)
        except asyncio.TimeoutError:
            raise no_reply(to, request_id, timeout) from None
        finally:
            self._forget(request_id)

    def _send(self, send: Callable[[], str], deliver: Callable[[Message], Any]) -> str:
        with (
            self._waiters_lock
        ):  # _hand_over takes it: a reply read before send() returned waits here
            request_id = send()
            self._waiters[request_id] = deliver
        return request_id

    def _forget(self, request_id: str) -> None:
        with self._waiters_lock:
            self._waiters.pop(request_id, None)

    def _hand_over(self, reply: Message) -> None:
        """Give a reply to the request waiting for it; one that nobody waits for is just acknowledged."""
        assert reply.reply_to is not None
        with self._waiters_lock:
            deliver = self._waiters.pop(reply.reply_to, None)
        if deliver is not None:
            try:
                deliver(reply)
                return
            except RuntimeError:  # the requesting coroutine's event loop is closed
                pass
        log.debug(
            "agent %s: nobody waits for reply %s (to %s, from %s): acknowledged",
            self._runtime.agent_id,
            reply.id,
            reply.reply_to,
            reply.sender,
        )

    def _handle(self, message: Message) -> None:
        if message.reply_to is not None:
            self._hand_over(message)
            return
        runtime = self._runtime
        client = runtime.client
        handler = runtime.agent.message_handlers.get(message.type)
        reply: Any = None
        if message.problem is not None:
            log.warning(
                "agent %s: message %s (type %r from %r) is malformed: %s; replied with an "
                "error and acknowledged",
                runtime.agent_id,
                message.id,
                message.type,
                message.sender,
                message.problem,
            )
            reply = {"error": f"PoisonMessage: {message.problem}"} if message.sender else None
        elif handler is None:
            log.warning(
                "agent %s: no handler for message type %r (message %s from %s)",
                runtime.agent_id,
                message.type,
                message.id,
                message.sender,
            )
        else:
            with message_span(message, runtime.agent_id) as record:
                try:
                    reply = self._call(handler, message)
                    record("handled", "")
                except BaseException as error:  # noqa: BLE001 - SystemExit too: the thread goes on
                    log.warning(
                        "agent %s: handler of message %s (type %r from %s) failed: %s; replied "
                        "with the error and acknowledged",
                        runtime.agent_id,
                        message.id,
                        message.type,
                        message.sender,
                        error_text(error),
                        exc_info=error,
                    )
                    reply = {"error": error_text(error)}
                    record("failed", reply["error"])
        if reply is not None:
            try:
                client.send(
                    runtime.agent_id,
                    message.sender,
                    message.type,
                    reply,
                    reply_to=message.id,
                    allow_unregistered=True,
                )
            except (TypeError, ValueError) as error:
                log.warning(
                    "agent %s: the reply of the handler of message %s (type %r) is not "
                    "JSON-serialisable (%s): replied with the error instead",
                    runtime.agent_id,
                    message.id,
                    message.type,
                    error,
                )
                client.send(
                    runtime.agent_id,
                    message.sender,
                    message.type,
                    {"error": f"the handler's reply cannot be sent: {error_text(error)}"},
                    reply_to=message.id,
                    allow_unregistered=True,
                )

    def _call(self, handler: Any, message: Message) -> Any:
        """Run a message handler; with the agent's message_timeout_s, one that has not returned
        by then raises TimeoutError here (a coroutine is cancelled, a sync handler's thread is
        left to finish on its own) and the mailroom goes on."""
        self._handling = message
        timeout = self._runtime.agent.message_timeout_s
        try:
            if not handler.is_async:
                if timeout is None:
                    return contextvars.copy_context().run(
                        _handle_in_context, handler.function, message
                    )
                return _call_in_thread(handler.function, message, timeout)
            loop = self._runtime.async_executor().loop
            future = asyncio.run_coroutine_threadsafe(
                _handle_in_task(handler.function, message), loop
            )
            try:
                return future.result(timeout)
            except concurrent.futures.TimeoutError:
                if future.done():  # the handler's own TimeoutError
                    raise
                future.cancel()
                raise _timed_out(timeout) from None
        finally:
            self._handling = None


def _timed_out(timeout: float | None) -> TimeoutError:
    return TimeoutError(f"the handler did not return within message_timeout_s ({timeout:g} s)")


def _call_in_thread(function: Callable[[Message], Any], message: Message, timeout: float) -> Any:
    """Run a sync message handler in a thread of its own for up to ``timeout`` s."""
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, _handle_in_context(function, message)))
        except BaseException as error:  # noqa: BLE001 - re-raised in the mailroom
            outcome.append((False, error))

    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(run,), name="agentfn-message", daemon=True
    )
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise _timed_out(timeout)
    returned, value = outcome[0]
    if returned:
        return value
    raise value


def _handle_in_context(function: Callable[[Message], Any], message: Message) -> Any:
    _HANDLING.set(message)
    return function(message)


async def _handle_in_task(function: Callable[[Message], Any], message: Message) -> Any:
    _HANDLING.set(message)  # in the task's own context
    return await function(message)


def _resolve(future: asyncio.Future[Message], message: Message) -> None:
    if not future.done():
        future.set_result(message)
