"""What the runtime's threads (maintenance, mailroom, waiter) use of the runtime, as a Protocol:
they are built by the runtime and must not import it."""

from __future__ import annotations

from typing import Any, Protocol

from ..client.client import Client
from ..client.waiting import ServerClock
from ..errors import Denied
from .executors import LoopExecutor
from .running import Running
from .types import AgentSettings


class RuntimeServices(Protocol):
    """The part of :class:`agentfn.agent.runtime.Runtime` its threads rely on."""

    agent: AgentSettings
    client: Client
    agent_id: str
    clock: ServerClock
    running: dict[str, Running]

    def post(self, event: Any) -> None:
        """Give the pump an event (thread-safe)."""

    def finalize(self, running: Running) -> bool:
        """Claim the right to decide a running task's outcome; False if someone already did."""

    def async_executor(self) -> LoopExecutor:
        """The executor of async handlers."""

    def register(self) -> None:
        """Register (or register again) with the agent's capabilities."""

    def lost_id(self, error: Denied) -> None:
        """Another process registered the agent's id (another secret): stop, logging why."""

    def abort(self, error: BaseException) -> None:
        """A thread cannot recover: stop now, deregister, and make the run raise ``error``."""
