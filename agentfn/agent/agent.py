"""The agent runtime: an agent registers its capabilities and serves their tasks.

    agent = agentfn.Agent(client, "researcher-1", concurrency=4)

    @agent.handler("web_search")
    async def web_search(task: agentfn.TaskContext) -> dict:
        return {"hits": await search(task.payload["q"])}

    agent.run()          # until SIGTERM/SIGINT or agent.stop(); `await agent.run_async()` in asyncio

A handler receives a :class:`TaskContext` and returns a JSON-serialisable result, which
completes the task. Raising fails the attempt (retried with backoff up to the task's
max_attempts; :class:`PermanentFailure` fails it for good); raising :class:`InputRequired`
ends a workflow step's attempt asking for input. A handler that outlives the task's timeout_ms
fails with a TimeoutError, and one whose task is canceled is interrupted; either way its result
is discarded (async handlers are cancelled; sync ones see ``task.interrupted``).

How it runs (agentfn/agent/runtime.py): every task transition is one library call. A finished task
is completed with ``NEXT`` so that the same round trip claims the next one; several finished at
once go out in one pipeline (their completions in one ``agentfn_task_complete_many``), and a
second pipeline may go out before the first one's replies are read. An idle agent blocks in
``XREAD BLOCK`` on the streams its last claim named, from the ids that claim returned (no
polling, no lost wake-up). A maintenance thread heartbeats, renews leases, enforces timeouts
and runs the namespace's reaper (one agent at a time, under a lock).
Stopping stops claiming, lets running handlers finish within the grace period, then
deregisters, which hands every task still held back at once.

Redis I/O runs in threads over the synchronous client (redis-py's asyncio client adds ~40 µs
to each round trip here: a claim takes ~160 µs sync, ~200 µs asyncio), and sync handlers run
without blocking any event loop. ``run_async`` runs the same machinery beside the caller's
event loop and runs async handlers on that loop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import re
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..client.api.messages import Message, request_ttl_ms
from ..client.client import AsyncClient, Client, sync_twin
from ..constants import DEFAULTS
from .runtime import Runtime
from .types import Handler, TaskHandler

if TYPE_CHECKING:
    from .mailroom import Mailroom

#: Default time between two reaper runs in a namespace (ms); every agent offers, one runs.
DEFAULT_REAP_INTERVAL_MS = 1_000

#: Default time running handlers get to finish after a stop is requested (s).
DEFAULT_GRACE_PERIOD_S = 10.0


#: Characters allowed in an agent id (the library's check_id).
_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9_.\-@]")


def default_agent_id() -> str:
    """``<host>-<pid>``, reduced to the characters an agent id may hold."""
    return _ID_CHARACTERS.sub("-", f"{socket.gethostname()}-{os.getpid()}")[:128]


class Agent:
    """Serves handlers for capabilities (and message types) on behalf of one agent id.

    ``client`` may be None and bound later with :meth:`bind` (``agentfn worker`` does that).
    ``concurrency`` is how many tasks run at once; it is also the claim batch size.
    ``lease_ms`` (default: each task's timeout_ms) is the lease asked for on claims and
    renewals; a shorter one detects a dead agent sooner, at the cost of more renewals.
    ``message_timeout_s`` (default: none) is how long a message handler may run: one that has
    not returned by then is answered with a TimeoutError and the next message is handled (a
    sync handler then runs in a thread of its own per message).
    ``register_wait_s`` (default: twice ``ttl_ms``) is how long it waits at start while a
    previous process still holds its id (a restart under the same id: each run registers with a
    fresh secret, so the old registration must lapse or deregister first); a stop requested
    meanwhile (SIGTERM, :meth:`stop`) ends the wait and the run, unregistered.
    """

    def __init__(
        self,
        client: Client | AsyncClient | None,
        agent_id: str | None = None,
        *,
        concurrency: int = 1,
        ttl_ms: int | None = None,
        heartbeat_interval_ms: int | None = None,
        reap_interval_ms: int = DEFAULT_REAP_INTERVAL_MS,
        grace_period_s: float = DEFAULT_GRACE_PERIOD_S,
        lease_ms: int | None = None,
        message_timeout_s: float | None = None,
        metadata: dict[str, Any] | None = None,
        register_wait_s: float | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.client = client
        self.agent_id = agent_id or default_agent_id()
        self.concurrency = concurrency
        self.ttl_ms = ttl_ms or DEFAULTS["agent_ttl_ms"]
        self.heartbeat_interval_ms = heartbeat_interval_ms or max(1, self.ttl_ms // 3)
        if self.heartbeat_interval_ms >= self.ttl_ms:
            raise ValueError("heartbeat_interval_ms must be shorter than ttl_ms")
        self.reap_interval_ms = reap_interval_ms
        self.grace_period_s = grace_period_s
        self.lease_ms = lease_ms
        self.message_timeout_s = message_timeout_s
        self.register_wait_s = (
            2 * self.ttl_ms / 1000 if register_wait_s is None else register_wait_s
        )
        self.metadata = metadata
        self.task_handlers: dict[str, Handler] = {}
        self.message_handlers: dict[str, Handler] = {}
        self.ready = threading.Event()
        """Set once the agent is registered and serving (cleared when it stops)."""
        self._runtime: Runtime | None = None
        self._sync: Client | None = None
        """The synchronous twin of an AsyncClient, made on first use outside a run."""
        self._lock = threading.Lock()

    # -- configuration ---------------------------------------------------------------------

    @property
    def capabilities(self) -> list[str]:
        """The capabilities it registers: the names of its task handlers."""
        return list(self.task_handlers)

    def bind(self, client: Client | AsyncClient) -> Agent:
        """Use ``client`` (e.g. the one ``agentfn worker`` builds from --url/--namespace).

        With an :class:`agentfn.AsyncClient`, serve with ``await agent.run_async()``: handlers
        get the AsyncClient as ``task.client`` (await its methods), and the runtime does its
        own Redis I/O on a synchronous twin connected to the same server.
        """
        self.client = client
        self._sync = None
        return self

    def handler(self, capability: str) -> Callable[[TaskHandler], TaskHandler]:
        """Decorator: serve tasks of ``capability`` with the decorated function (sync or async)."""
        return self._register(self.task_handlers, capability, "capability")

    def on_message(self, message_type: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: handle inbox messages of ``message_type``: ``fn(message) -> reply content``.

        The function receives an :class:`agentfn.Message`. A return value other than None is
        sent back to the sender as a reply (``reply_to`` the message); an exception is logged and
        replied as ``{"error": "<Type>: <message>"}``. The message is acknowledged either way.

        Replies (messages with ``reply_to`` set, which carry their request's type) never reach a
        handler, so a reply is never answered: each goes to the :meth:`request` waiting for it,
        and one that nobody waits for (e.g. it came after the timeout) is acknowledged and
        logged at debug level. While the agent serves message handlers, its inbox belongs to
        them: make requests on its behalf with :meth:`request`, not ``client.request``.
        """
        return self._register(self.message_handlers, message_type, "message type")

    def _register(self, table: dict[str, Handler], name: str, what: str) -> Callable[[Any], Any]:
        def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
            if name in table:
                raise ValueError(f"{what} {name!r} already has a handler")
            table[name] = Handler(name, function, inspect.iscoroutinefunction(function))
            return function

        return decorate

    # -- requests ----------------------------------------------------------------------------

    def request(
        self,
        to: str,
        type: str,
        content: Any,
        timeout: float,
        *,
        ttl_ms: int | None = None,
        allow_unregistered: bool = False,
    ) -> Message:
        """Send ``to`` a request from this agent and wait for its reply; TimeoutError after ``timeout`` s.

        Like ``client.request(agent_id, ...)`` (the request expires when the wait ends unless
        ``ttl_ms`` says otherwise), and safe while the agent runs message handlers: its mailroom
        then reads the inbox and hands the reply to this call (never to a handler). A reply that
        comes after the timeout is acknowledged and dropped. Call it from any thread: task
        handlers, message handlers (theirs read the inbox directly: the mailroom waits for them),
        or outside the agent. From a coroutine use :meth:`request_async`.
        """
        mailroom = self._mailroom()
        if mailroom is None:
            return self._bound_client().request(
                self.agent_id,
                to,
                type,
                content,
                timeout,
                ttl_ms=ttl_ms,
                allow_unregistered=allow_unregistered,
            )
        return mailroom.request(
            self._sender(to, type, content, timeout, ttl_ms, allow_unregistered), to, timeout
        )

    async def request_async(
        self,
        to: str,
        type: str,
        content: Any,
        timeout: float,
        *,
        ttl_ms: int | None = None,
        allow_unregistered: bool = False,
    ) -> Message:
        """:meth:`request` for coroutines (async handlers, code beside ``run_async``): it waits
        without blocking the event loop."""
        mailroom = self._mailroom()
        if mailroom is None:
            return await asyncio.to_thread(
                self.request,
                to,
                type,
                content,
                timeout,
                ttl_ms=ttl_ms,
                allow_unregistered=allow_unregistered,
            )
        return await mailroom.request_async(
            self._sender(to, type, content, timeout, ttl_ms, allow_unregistered), to, timeout
        )

    def _mailroom(self) -> Mailroom | None:
        """The running mailroom that will hand the caller's replies over, or None (read the inbox directly)."""
        runtime = self._runtime
        mailroom = runtime.mailroom if runtime is not None else None
        return mailroom if mailroom is not None and mailroom.takes_replies() else None

    def _sender(
        self,
        to: str,
        type: str,
        content: Any,
        timeout: float,
        ttl_ms: int | None,
        allow_unregistered: bool,
    ) -> Callable[[], str]:
        return functools.partial(
            self._bound_client().send,
            self.agent_id,
            to,
            type,
            content,
            ttl_ms=request_ttl_ms(timeout, ttl_ms),
            allow_unregistered=allow_unregistered,
        )

    def _bound_client(self) -> Client:
        """The synchronous client of the agent (for an AsyncClient, a twin of it)."""
        if self.client is None:
            raise RuntimeError(
                "the agent has no client: pass one to Agent() or call agent.bind(client)"
            )
        runtime = self._runtime
        if runtime is not None:
            return runtime.client
        if self._sync is None:
            self._sync = sync_twin(self.client)
        return self._sync

    # -- running ---------------------------------------------------------------------------

    def _new_runtime(self, loop: asyncio.AbstractEventLoop | None) -> Runtime:
        self._bound_client()
        if not self.task_handlers and not self.message_handlers:
            raise RuntimeError(f"agent {self.agent_id} has no handlers")
        with self._lock:
            if self._runtime is not None:
                raise RuntimeError(f"agent {self.agent_id} is already running")
            self._runtime = Runtime(self, loop)
            return self._runtime

    def _finished(self) -> None:
        with self._lock:
            self._runtime = None
        self.ready.clear()

    def run(self, *, handle_signals: bool = True) -> None:
        """Serve until :meth:`stop` (or SIGTERM/SIGINT, when called in the main thread)."""
        runtime = self._new_runtime(None)
        try:
            with _signals_stop(self) if handle_signals else _nothing():
                runtime.serve()
        finally:
            self._finished()

    async def run_async(self, *, handle_signals: bool = True) -> None:
        """Serve from asyncio: async handlers run on the running loop. Cancelling it stops the
        agent gracefully (the grace period applies) before the cancellation propagates."""
        loop = asyncio.get_running_loop()
        runtime = self._new_runtime(loop)
        installed: list[signal.Signals] = []
        if handle_signals and threading.current_thread() is threading.main_thread():
            for number in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(number, self.stop)
                    installed.append(number)
                except (NotImplementedError, RuntimeError):
                    pass
        done: asyncio.Future[None] = loop.create_future()

        def serve() -> None:
            try:
                runtime.serve()
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine
                loop.call_soon_threadsafe(_settle, done, error)
            else:
                loop.call_soon_threadsafe(_settle, done, None)

        threading.Thread(target=serve, name=f"agentfn-{self.agent_id}", daemon=True).start()
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            self.stop()
            await done
            raise
        finally:
            for number in installed:
                loop.remove_signal_handler(number)
            self._finished()

    def start(self) -> threading.Thread:
        """Serve in a background thread (signals untouched); returns once the agent is ready."""
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                self.run(handle_signals=False)
            except BaseException as error:  # noqa: BLE001 - reported by start()
                errors.append(error)
                self.ready.set()

        thread = threading.Thread(target=serve, name=f"agentfn-{self.agent_id}", daemon=True)
        thread.start()
        self.ready.wait()
        if errors:
            thread.join()
            raise errors[0]
        return thread

    def stop(self, *, now: bool = False) -> None:
        """Stop claiming; running handlers get the grace period, then their tasks are handed back.

        Safe from any thread and from a signal handler. A second call (a second Ctrl-C), or
        ``now=True``, skips what is left of the grace period.
        """
        runtime = self._runtime
        if runtime is not None:
            runtime.request_stop(now=now)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def _signals_stop(agent: Agent) -> Iterator[None]:
    """In the main thread: SIGTERM and SIGINT call agent.stop() while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        number: signal.signal(number, lambda *_: agent.stop())
        for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
