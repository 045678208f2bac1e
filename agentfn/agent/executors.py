"""How an agent runs its handlers (internal): inline, in handler threads, or on an event loop.

Each way turns a handler's return or exception into an :class:`Outcome` and hands it to the
pump through ``post`` (the pump's event queue); the pump decides what to send.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..constants import LIMITS
from .tracing import attempt_span
from .types import Handler, InputRequired, PermanentFailure, TaskContext

if TYPE_CHECKING:
    from .running import Running


@dataclass(frozen=True)
class Outcome:
    """How a handler ended: complete (with a result or an input request), fail, or drop."""

    kind: str
    """'complete', 'fail' or 'drop' (interrupted: nothing to send)."""
    result: Any = None
    prompt: Any = None
    """For an input request: the prompt (complete with INPUT_REQUIRED)."""
    error: str = ""
    retry: bool = True
    traceback: str = ""
    """For a failure raised by the handler: its traceback, for the log."""

    @property
    def name(self) -> str:
        """How the attempt ended: completed, input-required, failed or dropped."""
        if self.kind == "complete":
            return "input-required" if self.prompt is not None else "completed"
        return {"fail": "failed", "drop": "dropped"}.get(self.kind, self.kind)


DROPPED = Outcome("drop")


def error_text(error: BaseException) -> str:
    """``<Type>: <message>``, cut to the library's error size limit."""
    text = f"{type(error).__name__}: {error}"
    encoded = text.encode("utf-8")
    if len(encoded) <= LIMITS["error_bytes"]:
        return text
    return encoded[: LIMITS["error_bytes"] - 3].decode("utf-8", "ignore") + "..."


def _outcome_of_error(error: BaseException) -> Outcome:
    if isinstance(error, InputRequired):
        return Outcome("complete", prompt=error.prompt)
    return Outcome(
        "fail",
        error=error_text(error),
        retry=not isinstance(error, PermanentFailure),
        traceback="".join(traceback.format_exception(type(error), error, error.__traceback__)),
    )


def call_sync(handler: Handler, context: TaskContext) -> Outcome:
    """Run a sync handler; its return value or exception as an Outcome (in a span when tracing).

    Any exception counts, SystemExit (a handler calling sys.exit) included: it fails the
    attempt instead of ending the thread that runs the handler.
    """
    with attempt_span(context) as record:
        try:
            outcome = Outcome("complete", result=handler.function(context))
        except BaseException as error:  # noqa: BLE001 - every handler error becomes the task's error
            outcome = _outcome_of_error(error)
        record(outcome.name, outcome.error)
        return outcome


async def call_async(handler: Handler, context: TaskContext) -> Outcome:
    """Run an async handler; cancelling it (timeout, cancel, shutdown) drops its result."""
    with attempt_span(context) as record:
        try:
            outcome = Outcome("complete", result=await handler.function(context))
        except asyncio.CancelledError as error:
            outcome = DROPPED if context.interrupted else _outcome_of_error(error)
        except BaseException as error:  # noqa: BLE001 - every handler error becomes the task's error
            outcome = _outcome_of_error(error)
        record(outcome.name, outcome.error)
        return outcome


def _result_of(done: asyncio.Task[Outcome]) -> Outcome:
    """The Outcome of a finished call_async task, whatever happened to it."""
    if done.cancelled():
        return DROPPED
    error = done.exception()
    return _outcome_of_error(error) if error is not None else done.result()


class HandlerThreads:
    """Daemon threads for sync handlers, started as needed up to ``size``.

    Daemon threads, so that a handler still stuck after the grace period does not keep the
    process alive: its task was handed back already.
    """

    def __init__(self, size: int, post: Callable[[Any], None]) -> None:
        self._size = size
        self._post = post
        self._jobs: queue.SimpleQueue[Running | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = self._idle = self._pending = 0

    def submit(self, running: Running) -> None:
        with self._lock:
            self._pending += 1
            spawn = self._pending > self._idle and self._threads < self._size
            if spawn:
                self._threads += 1
        if spawn:
            threading.Thread(target=self._work, name="agentfn-handler", daemon=True).start()
        self._jobs.put(running)

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            running = self._jobs.get()
            with self._lock:
                self._idle -= 1
                self._pending -= 1
            if running is None:
                return
            assert running.handler is not None
            self._post((running, call_sync(running.handler, running.context)))

    def close(self) -> None:
        for _ in range(self._threads):
            self._jobs.put(None)


class LoopExecutor:
    """Runs async handlers as tasks on an event loop (the caller's, or a private one)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None, post: Callable[[Any], None]) -> None:
        self._post = post
        self._outcomes: list[tuple[Running, Outcome]] = []
        self._thread: threading.Thread | None = None
        if loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=loop.run_forever, name="agentfn-loop", daemon=True
            )
            self._thread.start()
        self.loop = loop

    def submit(self, runnings: list[Running]) -> None:
        """Start the handlers on the loop: one wake-up of the loop for the whole batch."""
        self.loop.call_soon_threadsafe(self._begin_all, runnings)

    def _begin_all(self, runnings: list[Running]) -> None:
        for running in runnings:
            self._begin(running)

    def _begin(self, running: Running) -> None:
        assert running.handler is not None
        task = self.loop.create_task(call_async(running.handler, running.context))
        running.cancel_hook = lambda: self.loop.call_soon_threadsafe(task.cancel)
        if running.context.interrupted:  # interrupted before the hook existed
            task.cancel()
        task.add_done_callback(lambda done: self._finished(running, _result_of(done)))

    def _finished(self, running: Running, outcome: Outcome) -> None:
        # Outcomes of one loop iteration reach the pump together, as a list (one wake-up).
        if not self._outcomes:
            self.loop.call_soon(self._flush)
        self._outcomes.append((running, outcome))

    def _flush(self) -> None:
        outcomes, self._outcomes = self._outcomes, []
        self._post(outcomes)

    def close(self) -> None:
        if self._thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=1)
