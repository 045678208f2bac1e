"""The types shared by the agent layer: what a handler receives and may raise, how a handler is
registered, and what the runtime's parts need of an agent and of the runtime (as Protocols, so
that no part imports the module that builds it)."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..client.api.tasks import ClaimedTask
from ..client.client import AsyncClient, Client

#: What a task handler may be: ``fn(task) -> result``, sync or async.
TaskHandler = Callable[["TaskContext"], Any | Awaitable[Any]]


class InputRequired(Exception):
    """Raise in a handler of a workflow step to end its attempt asking for input.

    ``prompt`` (any JSON-serialisable value) is stored on the task; the step waits until the
    workflow is signalled (agentfn_wf_signal).
    """

    def __init__(self, prompt: Any) -> None:
        super().__init__(prompt if isinstance(prompt, str) else repr(prompt))
        self.prompt = prompt


class PermanentFailure(Exception):
    """Raise in a handler to fail its task for good: no retry, whatever attempts are left."""


#: Guards the lazily made interruption Events of task contexts (most handlers never wait on one).
_EVENT_LOCK = threading.Lock()


class TaskContext:
    """What a task handler receives: the claimed task, and whether to stop working on it."""

    __slots__ = ("_event", "agent_id", "client", "interrupt_reason", "task")

    def __init__(self, task: ClaimedTask, agent_id: str, client: Client | AsyncClient) -> None:
        self.task = task
        """The claim's record of the task."""
        self.agent_id = agent_id
        """The agent running it."""
        self.client = client
        """The agent's client, e.g. to send messages, submit follow-up tasks or read and write
        the workflow's shared context: a Client (thread-safe), or the AsyncClient the agent was
        bound to (await its methods, from async handlers under ``run_async``)."""
        self.interrupt_reason: str | None = None
        """Why the task was interrupted: 'canceled', 'timeout', 'lease-lost' or 'shutdown'."""
        self._event: threading.Event | None = None  # made by the first wait_interrupted()

    id = property(lambda self: self.task.id, doc="The task id.")
    capability = property(
        lambda self: self.task.capability, doc="The capability it was submitted for."
    )
    payload = property(
        lambda self: self.task.payload, doc="The submitted payload, decoded from JSON."
    )
    inputs = property(
        lambda self: self.task.inputs,
        doc="For a workflow step: the results of its dependencies (None otherwise).",
    )
    attempt = property(
        lambda self: self.task.attempt, doc="1 for the first attempt, 2 for the first retry..."
    )
    token = property(lambda self: self.task.token, doc="The fencing token of this attempt.")
    priority = property(lambda self: self.task.priority, doc="high, normal or low.")
    workflow = property(lambda self: self.task.workflow, doc="The workflow id, or None.")
    step = property(lambda self: self.task.step, doc="The workflow step id, or None.")
    timeout_ms = property(lambda self: self.task.timeout_ms, doc="How long the handler may run.")

    @property
    def interrupted(self) -> bool:
        """True once the result no longer counts (canceled, timed out, lease lost, shut down).

        A long synchronous handler should check it now and then and return early.
        """
        return self.interrupt_reason is not None

    def wait_interrupted(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds until the task is interrupted; True if it was."""
        with _EVENT_LOCK:
            if self._event is None:
                self._event = threading.Event()
        return self.interrupted or self._event.wait(timeout)

    def _interrupt(self, reason: str) -> None:
        with _EVENT_LOCK:
            if self.interrupt_reason is None:
                self.interrupt_reason = reason
                if self._event is not None:
                    self._event.set()

    def __repr__(self) -> str:
        return (
            f"TaskContext(id={self.id!r}, capability={self.capability!r}, attempt={self.attempt})"
        )


@dataclass(frozen=True)
class Handler:
    """A registered handler function and how to call it."""

    name: str
    """The capability or message type it serves."""
    function: Callable[..., Any]
    is_async: bool


class AgentSettings(Protocol):
    """What the runtime reads of an :class:`agentfn.Agent` (its configuration and handlers)."""

    client: Client | AsyncClient | None
    agent_id: str
    concurrency: int
    ttl_ms: int
    heartbeat_interval_ms: int
    reap_interval_ms: int
    grace_period_s: float
    lease_ms: int | None
    message_timeout_s: float | None
    register_wait_s: float
    metadata: dict[str, Any] | None
    task_handlers: dict[str, Handler]
    message_handlers: dict[str, Handler]
    ready: threading.Event

    @property
    def capabilities(self) -> list[str]: ...
