"""What the demo knows of the namespace, kept up to date from its event stream."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

from ...client.api.tasks import TaskInfo
from ...client.api.workflows import WorkflowInfo
from ...client.client import Client
from ...client.formats import duration
from ...constants import TaskState
from .fleet import AGENTS, VICTIM

#: Log lines kept on the live screen.
LOG_LINES = 12


@dataclass
class Recovery:
    """The task the killed agent held, and who finished it."""

    task_id: str
    attempt: int
    killed_at: float
    pid: int
    finished_by: str | None = None
    finished_attempt: int = 0
    finished_at: float = 0.0
    reason: str = ""


@dataclass
class Tracker:
    """The demo's picture of the namespace, kept up to date from its events."""

    client: Client
    started: float = field(default_factory=time.monotonic)
    tasks: dict[str, TaskInfo] = field(default_factory=dict)
    workflows: dict[str, WorkflowInfo] = field(default_factory=dict)
    agents: dict[str, str] = field(default_factory=lambda: dict.fromkeys(AGENTS, "starting"))
    log: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=LOG_LINES))
    messages: int = 0
    events: int = 0
    recovery: Recovery | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, text: str) -> str:
        line = f"[{self.elapsed():5.2f}s] {text}"
        self.log.append(line)
        return line

    def apply(self, fields: dict[str, str]) -> list[str]:
        """Take in one event; returns the lines worth telling."""
        self.events += 1
        kind = fields.get("type", "")
        said: list[str] = []
        if kind.startswith("agent.") and fields.get("agent") in self.agents:
            said += self._agent_event(kind, fields["agent"])
        elif kind.startswith("task.") and "task" in fields:
            said += self._task_event(kind, self.client.get_task(fields["task"]))
        elif kind.startswith(("workflow.", "step.")) and "workflow" in fields:
            info = self.workflows[fields["workflow"]] = self.client.get_workflow(fields["workflow"])
            if kind.startswith("workflow.") and info.done or kind == "workflow.created":
                said.append(self.say(f"workflow {info.id} {kind.split('.', 1)[1]}"))
        elif kind == "message.sent":
            self.messages += 1
            said.append(
                self.say(
                    f"message {fields.get('from')} -> {fields.get('to')}: {fields.get('message_type')}"
                )
            )
        return said

    def _agent_event(self, kind: str, agent_id: str) -> list[str]:
        state = {
            "agent.registered": "live",
            "agent.lapsed": "lapsed",
            "agent.deregistered": "stopped",
        }.get(kind)
        if state is None or self.agents[agent_id] == "killed" and state != "lapsed":
            return []
        self.agents[agent_id] = "killed, lapsed" if self.agents[agent_id] == "killed" else state
        return [self.say(f"agent {agent_id} {kind.split('.', 1)[1]}")]

    def _task_event(self, kind: str, task: TaskInfo) -> list[str]:
        self.tasks[task.id] = task
        where = f"{task.workflow}/{task.step}" if task.workflow else task.capability
        recovery = self.recovery
        if kind == "task.running":
            return [
                self.say(f"{task.id} {where}: running on {task.agent} (attempt {task.attempt})")
            ]
        if kind == "task.completed":
            said = [
                self.say(
                    f"{task.id} {where}: completed by {task.agent} "
                    f"in {duration((task.finished_ms or 0) - (task.started_ms or 0))}"
                )
            ]
            if recovery is not None and recovery.task_id == task.id:
                recovery.finished_by, recovery.finished_attempt = task.agent, task.attempt
                recovery.finished_at = self.elapsed()
                said.append(
                    self.say(
                        f"{task.id} recovered: {VICTIM} was killed holding it, {task.agent} "
                        f"completed it on attempt {task.attempt}"
                    )
                )
            return said
        if kind == "task.queued" and task.errors:
            error = task.errors[-1].get("error", "")
            if recovery is not None and recovery.task_id == task.id:
                recovery.reason = error
            return [self.say(f"{task.id} {where}: back in the queue ({error})")]
        if kind in ("task.delayed", "task.failed", "task.dead", "task.canceled"):
            return [self.say(f"{task.id} {where}: {kind.split('.', 1)[1]} ({task.error or ''})")]
        return []

    def running_on(self, agent_id: str) -> list[TaskInfo]:
        return [
            t
            for t in self.tasks.values()
            if t.state == TaskState.RUNNING.value and t.agent == agent_id
        ]
