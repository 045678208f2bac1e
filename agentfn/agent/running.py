"""One claimed task in this process, as the runtime's threads share it."""

from __future__ import annotations

from collections.abc import Callable

from ..client.api.tasks import ClaimedTask
from .types import Handler, TaskContext


class Running:
    """One claimed task in this process, from claim until its handler has returned."""

    __slots__ = (
        "cancel_hook",
        "context",
        "deadline",
        "finalized",
        "handler",
        "lease_ms",
        "next_extend",
        "task",
    )

    def __init__(
        self,
        task: ClaimedTask,
        handler: Handler | None,
        context: TaskContext,
        lease_ms: int | None,
        now: float,
    ) -> None:
        self.task = task
        self.handler = handler
        self.context = context
        self.deadline = now + task.timeout_ms / 1000
        """Monotonic time at which the handler has run out of time."""
        self.lease_ms = lease_ms or task.timeout_ms
        self.next_extend = now + self.lease_ms / 3000
        """Monotonic time of the next lease renewal (a third of the lease)."""
        self.finalized = False
        """True once its outcome is decided (sent, being sent, or dropped)."""
        self.cancel_hook: Callable[[], object] | None = None
        """Cancels an async handler's coroutine."""

    def interrupt(self, reason: str) -> None:
        """Tell the handler its result no longer counts; cancel it if it is a coroutine."""
        self.context._interrupt(reason)
        hook = self.cancel_hook
        if hook is not None:
            hook()
