"""The demo's script: start the workflows, kill the victim, follow the events to the end."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import redis
from rich.console import Console
from rich.live import Live

from ... import keys
from ...client.api.tasks import TaskInfo
from ...client.blocking import xread_blocking
from ...client.client import Client
from ...constants import TaskState, WorkflowState
from ...replies import xread_entries
from ..common import CliError
from .fleet import TASK_TIMEOUT_MS, VICTIM, Fleet
from .screen import live_view
from .tracker import Recovery, Tracker

#: The workflow of Redis's multi-agent write-up: research, then write, then a code example.
MULTI_AGENT = (
    "multi-agent",
    [
        {"id": "research", "capability": "research", "input": {"topic": "Redis Functions"}},
        {
            "id": "write",
            "capability": "write",
            "input": {"title": "Coordinating agents with Redis Functions"},
            "depends_on": ["research"],
        },
        {
            "id": "code",
            "capability": "code",
            "input": {"language": "python"},
            "depends_on": ["write"],
        },
    ],
)

#: A parallel workflow: three research steps fan out, one write step fans them in.
FAN_IN = (
    "fan-in",
    [
        {"id": "research-streams", "capability": "research", "input": {"topic": "Streams"}},
        {"id": "research-pubsub", "capability": "research", "input": {"topic": "Pub/Sub"}},
        {"id": "research-leases", "capability": "research", "input": {"topic": "Leases"}},
        {
            "id": "write",
            "capability": "write",
            "input": {"title": "Why nothing gets lost"},
            "depends_on": ["research-streams", "research-pubsub", "research-leases"],
        },
        {
            "id": "code",
            "capability": "code",
            "input": {"language": "python"},
            "depends_on": ["write"],
        },
    ],
)

#: Longest block on the event stream, so that the clock on screen keeps moving (ms).
EVENT_BLOCK_MS = 200


class DemoFailed(CliError):
    """The demo did not show what it promises (a workflow failed, the killed agent's task was lost)."""


def read_events(client: redis.Redis, stream: str) -> Iterator[list[dict[str, str]]]:
    """Batches of new events (an empty batch every EVENT_BLOCK_MS when there are none)."""
    last_id = "0-0"
    while True:
        reply = xread_blocking(client, {stream: last_id}, EVENT_BLOCK_MS, 200)
        entries = xread_entries(reply)
        if entries:
            last_id = entries[-1][0]
        yield [fields for _, fields in entries]


class Scenario:
    """Drives the demo from the events: start the workflows, kill the victim, notice the end."""

    def __init__(self, tracker: Tracker, fleet: Fleet) -> None:
        self.tracker = tracker
        self.fleet = fleet
        self.started: list[str] = []
        self.finished = False

    def react(self, fields: dict[str, str]) -> list[str]:
        tracker, kind = self.tracker, fields.get("type", "")
        said: list[str] = []
        if not self.started and all(state == "live" for state in tracker.agents.values()):
            said.append(self._start(MULTI_AGENT))
        elif kind.startswith("workflow.") and kind != "workflow.created":
            if fields.get("workflow") == MULTI_AGENT[0]:
                said.append(self._start(FAN_IN))
            elif fields.get("workflow") == FAN_IN[0]:
                self.finished = True
        elif kind == "task.running" and fields.get("agent") == VICTIM and tracker.recovery is None:
            task = tracker.tasks.get(fields.get("task", ""))
            if task is not None and task.workflow == FAN_IN[0]:
                said += self._kill(task)
        return said

    def _start(self, workflow: tuple[str, list[dict[str, Any]]]) -> str:
        workflow_id, definition = workflow
        steps = [{**step, "timeout_ms": TASK_TIMEOUT_MS} for step in definition]
        self.tracker.client.create_workflow(steps, workflow_id=workflow_id)
        self.started.append(workflow_id)
        shape = (
            " -> ".join(s["id"] for s in steps)
            if workflow_id == MULTI_AGENT[0]
            else "three research steps in parallel -> write (fan-in) -> code"
        )
        return self.tracker.say(f"starting workflow {workflow_id}: {shape}")

    def _kill(self, task: TaskInfo) -> list[str]:
        tracker = self.tracker
        pid = self.fleet.kill(VICTIM)
        tracker.agents[VICTIM] = "killed"
        # The process is gone: if the task still runs under its attempt, the victim held it.
        held = tracker.client.get_task(task.id)
        said = [
            tracker.say(
                f"SIGKILL {VICTIM} (pid {pid}) while it holds {task.id} "
                f"({task.workflow}/{task.step}, attempt {held.attempt})"
            )
        ]
        if (
            held.state == TaskState.RUNNING.value
            and held.agent == VICTIM
            and held.attempt == task.attempt
        ):
            tracker.recovery = Recovery(task.id, task.attempt, tracker.elapsed(), pid)
            said.append(
                tracker.say(
                    f"{task.id} is leased to a dead agent: its {TASK_TIMEOUT_MS // 1000} s lease "
                    "must expire before anyone else may take it"
                )
            )
        else:
            said.append(tracker.say(f"{task.id} finished before the kill landed ({held.state})"))
        return said


def run_scenario(
    client: Client, fleet: Fleet, where: str, console: Console, *, live: bool, timeout: float
) -> Tracker:
    """Run both workflows, show progress (a live screen, or plain lines), return what happened."""
    tracker = Tracker(client)
    scenario = Scenario(tracker, fleet)
    deadline = time.monotonic() + timeout
    display = (
        Live(live_view(tracker, where), console=console, auto_refresh=False, transient=False)
        if live
        else contextlib.nullcontext()
    )
    with display:
        for batch in read_events(client.redis, keys.events(client.namespace)):
            for fields in batch:
                lines = tracker.apply(fields) + scenario.react(fields)
                if not live:
                    for line in lines:
                        print(line, flush=True)
            if isinstance(display, Live):
                display.update(live_view(tracker, where), refresh=True)
            if scenario.finished:
                break
            problem = fleet.crashed()
            if problem:
                raise DemoFailed(problem)
            if time.monotonic() > deadline:
                raise DemoFailed(f"the demo did not finish within {timeout:g} s")
    return tracker


def verdict(tracker: Tracker) -> str | None:
    """Why the demo failed to show what it promises; None when it did."""
    for info in tracker.workflows.values():
        if info.state != WorkflowState.COMPLETED:
            return f"workflow {info.id} {info.state.value}: {info.error}"
    if len(tracker.workflows) < 2:
        return "not every workflow ran"
    recovery = tracker.recovery
    if recovery is None:
        return f"{VICTIM} was not killed while holding a task"
    if not recovery.finished_by or recovery.finished_by == VICTIM:
        return f"task {recovery.task_id} of the killed {VICTIM} was not completed by another agent"
    return None
