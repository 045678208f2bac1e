"""`agentfn demo`: agents coordinating through Redis, live in the terminal, in a few seconds.

What it does:

1. starts a temporary redis-server (EmbeddedRedis), unless --url names one (then it works in
   a fresh namespace, demo-<timestamp>, and touches nothing else), and deploys the library;
2. starts four agents as separate OS processes with ``agentfn worker``: two researchers, a
   writer and a coder (agentfn/demo_agents.py);
3. runs the workflow of Redis's multi-agent write-up, research -> write -> code example;
4. runs a parallel workflow: three research steps fanned out, fanned in by one write step,
   then a code example. While it runs, researcher-1 is killed with SIGKILL as soon as it holds
   one of the research tasks: its lease (2 s) expires, the surviving agents' reaper puts the task
   back, and researcher-2 completes it;
5. along the way the writer checks a fact with a researcher (a request and its reply) and the
   coder credits the researchers whose findings it used: agent-to-agent messages;
6. shows the results, per-step timings and totals, then stops the agents and the server.

Everything on screen comes from the namespace's event stream (XREAD BLOCK), the same stream
``agentfn events`` shows; nothing is polled.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import redis
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from . import keys
from .api.tasks import TaskInfo
from .api.workflows import WorkflowInfo
from .cli import CliError, connect
from .client import Client
from .constants import TaskState, WorkflowState
from .deploy import deploy
from .ops_view import duration, make_console, state_text, table
from .server import EmbeddedRedis

#: Lease (and handler timeout) of every demo task: a killed agent's task is back this soon (ms).
TASK_TIMEOUT_MS = 2_000

#: The agents: id -> role (a factory in agentfn/demo_agents.py).
AGENTS = {"researcher-1": "researcher", "researcher-2": "researcher", "writer-1": "writer", "coder-1": "coder"}

#: The agent killed with SIGKILL while it holds a task of the parallel workflow.
VICTIM = "researcher-1"

#: The workflow of Redis's multi-agent write-up: research, then write, then a code example.
MULTI_AGENT = ("multi-agent", [
    {"id": "research", "capability": "research", "input": {"topic": "Redis Functions"}},
    {"id": "write", "capability": "write", "input": {"title": "Coordinating agents with Redis Functions"},
     "depends_on": ["research"]},
    {"id": "code", "capability": "code", "input": {"language": "python"}, "depends_on": ["write"]},
])

#: A parallel workflow: three research steps fan out, one write step fans them in.
FAN_IN = ("fan-in", [
    {"id": "research-streams", "capability": "research", "input": {"topic": "Streams"}},
    {"id": "research-pubsub", "capability": "research", "input": {"topic": "Pub/Sub"}},
    {"id": "research-leases", "capability": "research", "input": {"topic": "Leases"}},
    {"id": "write", "capability": "write", "input": {"title": "Why nothing gets lost"},
     "depends_on": ["research-streams", "research-pubsub", "research-leases"]},
    {"id": "code", "capability": "code", "input": {"language": "python"}, "depends_on": ["write"]},
])

#: Most seconds the whole demo may take before it gives up.
DEFAULT_TIMEOUT_S = 60.0

#: Longest block on the event stream, so that the clock on screen keeps moving (ms).
EVENT_BLOCK_MS = 200

#: Log lines kept on the live screen.
LOG_LINES = 12


class DemoFailed(CliError):
    """The demo did not show what it promises (a workflow failed, the killed agent's task was lost)."""


# -- the agents' processes --------------------------------------------------------------------

class Fleet:
    """The agent processes: started with `agentfn worker`, stopped (or killed) on exit."""

    def __init__(self, url: str, namespace: str, log_directory: str) -> None:
        self.url = url
        self.namespace = namespace
        self.log_directory = log_directory
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        for agent_id, role in AGENTS.items():
            log = open(os.path.join(self.log_directory, f"{agent_id}.log"), "wb")
            with log:
                self.processes[agent_id] = subprocess.Popen(
                    [sys.executable, "-m", "agentfn", "worker", f"agentfn.demo_agents:{role}",
                     "--agent-id", agent_id, "--url", self.url, "--namespace", self.namespace,
                     "--log-level", "WARNING"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, agent_id: str) -> int:
        """SIGKILL one agent (no goodbye: its tasks stay leased to it); returns its pid."""
        process = self.processes[agent_id]
        process.send_signal(signal.SIGKILL)
        process.wait()
        return process.pid

    def crashed(self) -> str | None:
        """The first agent that exited on its own, with the end of its log; None when all run."""
        for agent_id, process in self.processes.items():
            if process.poll() is not None and process.returncode != -signal.SIGKILL:
                with open(os.path.join(self.log_directory, f"{agent_id}.log"), errors="replace") as log:
                    tail = " | ".join(line.strip() for line in log.readlines()[-3:])
                return f"agent {agent_id} exited with status {process.returncode}: {tail}"
        return None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM every agent (each deregisters), then SIGKILL what is left after ``timeout``."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- what the demo knows, from the event stream -----------------------------------------------

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
            said.append(self.say(f"message {fields.get('from')} -> {fields.get('to')}: {fields.get('message_type')}"))
        return said

    def _agent_event(self, kind: str, agent_id: str) -> list[str]:
        state = {"agent.registered": "live", "agent.lapsed": "lapsed", "agent.deregistered": "stopped"}.get(kind)
        if state is None or self.agents[agent_id] == "killed" and state != "lapsed":
            return []
        self.agents[agent_id] = "killed, lapsed" if self.agents[agent_id] == "killed" else state
        return [self.say(f"agent {agent_id} {kind.split('.', 1)[1]}")]

    def _task_event(self, kind: str, task: TaskInfo) -> list[str]:
        self.tasks[task.id] = task
        where = f"{task.workflow}/{task.step}" if task.workflow else task.capability
        recovery = self.recovery
        if kind == "task.running":
            return [self.say(f"{task.id} {where}: running on {task.agent} (attempt {task.attempt})")]
        if kind == "task.completed":
            said = [self.say(f"{task.id} {where}: completed by {task.agent} "
                             f"in {duration((task.finished_ms or 0) - (task.started_ms or 0))}")]
            if recovery is not None and recovery.task_id == task.id:
                recovery.finished_by, recovery.finished_attempt = task.agent, task.attempt
                recovery.finished_at = self.elapsed()
                said.append(self.say(f"{task.id} recovered: {VICTIM} was killed holding it, {task.agent} "
                                     f"completed it on attempt {task.attempt}"))
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
        return [t for t in self.tasks.values() if t.state == TaskState.RUNNING.value and t.agent == agent_id]


# -- drawing ----------------------------------------------------------------------------------

def live_view(tracker: Tracker, where: str) -> RenderableType:
    """The live screen: agents, every workflow step, and the latest lines."""
    agents_heading, agents = table("Agents", "agent", "role", "state", "doing")
    for agent_id, role in AGENTS.items():
        state = tracker.agents[agent_id]
        doing = ", ".join(f"{t.id} {t.workflow}/{t.step}" for t in tracker.running_on(agent_id))
        if state.startswith("killed") and tracker.recovery is not None:
            doing = f"SIGKILL while holding {tracker.recovery.task_id}"
        agents.add_row(agent_id, role, state_text(state.split(",")[0]), doing or "-")
    steps_heading, steps = table("Workflows", "workflow", "step", "state", "agent", "attempts", "ran")
    for info in tracker.workflows.values():
        for step in info.steps:
            task = tracker.tasks.get(step.task or "")
            ran = duration(step.finished_ms - step.started_ms) if step.finished_ms and step.started_ms else "-"
            steps.add_row(info.id, step.id, state_text(step.state.value), (task.agent if task else None) or "-",
                          str(step.attempts or "-"), ran)
    header = Text.assemble(("agentfn demo", "bold"), f"  {where}  ", (f"{tracker.elapsed():.1f} s", "cyan"))
    return Group(header, Text(), agents_heading, agents, Text(), steps_heading, steps, Text(),
                 Text("\n".join(tracker.log), style="dim"))


def report(console: Console, tracker: Tracker, total_s: float) -> None:
    """The final results, per-step timings and totals."""
    console.print()
    console.rule("Results")
    for info in tracker.workflows.values():
        console.print(Text.assemble(("workflow ", "bold"), (info.id, "bold"), "  ", state_text(info.state.value)))
        for step in info.steps:
            result = step.result if isinstance(step.result, dict) else {}
            if "article" in result:
                console.print(f"  {step.id}: {result['article']}", soft_wrap=True)
                console.print(f"  {' ' * len(step.id)}  (sources {', '.join(result['sources'])}; "
                              f"fact checked by {result['fact_checked_by']})")
            elif "code" in result:
                console.print(f"  {step.id}:")
                for line in str(result["code"]).splitlines():
                    console.print(f"      {line}", soft_wrap=True)
    heading, timings = table("Per-step timings", "workflow", "step", "agent", "attempts", "waited", "ran")
    attempts = 0
    for info in tracker.workflows.values():
        for step in info.steps:
            task = tracker.tasks.get(step.task or "")
            attempts += step.attempts
            waited = duration(step.started_ms - step.queued_ms) if step.started_ms and step.queued_ms else "-"
            ran = duration(step.finished_ms - step.started_ms) if step.finished_ms and step.started_ms else "-"
            timings.add_row(info.id, step.id, (task.agent if task else None) or "-", str(step.attempts), waited, ran)
        if info.finished_ms:
            timings.add_row(info.id, Text("whole workflow", style="bold"), "", "", "",
                            duration(info.finished_ms - info.created_ms))
    console.print()
    console.print(heading)
    console.print(timings)
    console.print()
    completed = sum(1 for info in tracker.workflows.values() if info.state == WorkflowState.COMPLETED)
    steps = sum(len(info.steps) for info in tracker.workflows.values())
    console.print(f"Totals: {completed} of {len(tracker.workflows)} workflows completed, {steps} steps, "
                  f"{attempts} attempts ({attempts - steps} retried), {tracker.messages} messages, "
                  f"{tracker.events} events, {total_s:.1f} s in all")
    recovery = tracker.recovery
    if recovery is not None and recovery.finished_by:
        console.print(f"Recovered: {recovery.task_id} was held by {VICTIM} (pid {recovery.pid}, attempt "
                      f"{recovery.attempt}) when it was killed; {recovery.reason or 'its lease expired'}; "
                      f"{recovery.finished_by} completed it on attempt {recovery.finished_attempt}, "
                      f"{recovery.finished_at - recovery.killed_at:.1f} s after the kill")


# -- the scenario -----------------------------------------------------------------------------

def read_events(client: redis.Redis, stream: str) -> Iterator[list[dict[str, str]]]:
    """Batches of new events (an empty batch every EVENT_BLOCK_MS when there are none)."""
    last_id = "0-0"
    while True:
        reply = client.xread({stream: last_id}, block=EVENT_BLOCK_MS, count=200)
        batch = []
        for _, entries in reply or []:
            for entry_id, fields in entries:
                last_id = entry_id
                batch.append(fields)
        yield batch


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
        shape = " -> ".join(s["id"] for s in steps) if workflow_id == MULTI_AGENT[0] else \
            "three research steps in parallel -> write (fan-in) -> code"
        return self.tracker.say(f"starting workflow {workflow_id}: {shape}")

    def _kill(self, task: TaskInfo) -> list[str]:
        tracker = self.tracker
        pid = self.fleet.kill(VICTIM)
        tracker.agents[VICTIM] = "killed"
        # The process is gone: if the task still runs under its attempt, the victim held it.
        held = tracker.client.get_task(task.id)
        said = [tracker.say(f"SIGKILL {VICTIM} (pid {pid}) while it holds {task.id} "
                            f"({task.workflow}/{task.step}, attempt {held.attempt})")]
        if held.state == TaskState.RUNNING.value and held.agent == VICTIM and held.attempt == task.attempt:
            tracker.recovery = Recovery(task.id, task.attempt, tracker.elapsed(), pid)
            said.append(tracker.say(f"{task.id} is leased to a dead agent: its {TASK_TIMEOUT_MS // 1000} s lease "
                                    "must expire before anyone else may take it"))
        else:
            said.append(tracker.say(f"{task.id} finished before the kill landed ({held.state})"))
        return said


def run_scenario(client: Client, fleet: Fleet, where: str, console: Console, *, live: bool,
                 timeout: float) -> Tracker:
    """Run both workflows, show progress (a live screen, or plain lines), return what happened."""
    tracker = Tracker(client)
    scenario = Scenario(tracker, fleet)
    deadline = time.monotonic() + timeout
    display = Live(live_view(tracker, where), console=console, auto_refresh=False, transient=False) \
        if live else contextlib.nullcontext()
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


# -- the command ------------------------------------------------------------------------------

def setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None,
                        help="run against this Redis, in a fresh namespace (default: a temporary redis-server)")
    parser.add_argument("--namespace", default=None,
                        help="namespace to use with --url (default: demo-<timestamp>; it must be new)")
    parser.add_argument("--no-live", action="store_true", help="plain lines instead of a live screen (CI, pipes)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"give up after this many seconds (default {DEFAULT_TIMEOUT_S:g})")


def run(args: argparse.Namespace) -> None:
    began = time.monotonic()
    console = make_console()
    live = not args.no_live and console.is_terminal
    namespace = args.namespace or ("demo" if not args.url else time.strftime("demo-%Y%m%d-%H%M%S"))
    try:
        keys.validate_namespace(namespace)
    except ValueError as error:
        raise CliError(f"--namespace {namespace!r}: {error}") from None
    with contextlib.ExitStack() as stack:
        if args.url:
            url = where = args.url
        else:
            server = stack.enter_context(EmbeddedRedis())
            url, where = server.url, f"temporary redis-server pid {server.pid} on 127.0.0.1:{server.port}"
        connection = connect(url)
        stack.callback(connection.close)
        client = Client(connection, namespace)
        if connection.exists(keys.meta(namespace), keys.events(namespace)):
            raise CliError(f"namespace {namespace} is not empty: pick a new one with --namespace")
        print(f"agentfn demo: {where}, namespace {namespace}", flush=True)
        print(deploy(connection, namespace).summary(), flush=True)
        fleet = Fleet(url, namespace, stack.enter_context(tempfile.TemporaryDirectory(prefix="agentfn-demo-")))
        stack.callback(fleet.stop)
        fleet.start()
        tracker = run_scenario(client, fleet, where, console, live=live, timeout=args.timeout)
        fleet.stop()
        report(console, tracker, time.monotonic() - began)
        problem = verdict(tracker)
        if problem:
            raise DemoFailed(problem)
        if args.url:
            print(f"The demo's keys stay in namespace {namespace} until they expire: "
                  f"agentfn status --url {url} --namespace {namespace}")
    stopped = "the agents are stopped" if args.url else "the agents and the redis-server are stopped"
    print(f"demo finished in {time.monotonic() - began:.1f} s; {stopped}")
