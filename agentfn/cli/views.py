"""How the operator commands draw things: rich renderables and plain-text helpers.

Kept apart from the commands so that ``agentfn status``, ``agentfn top`` and the demo draw a
namespace the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ..client.api.tasks import TaskInfo
from ..client.api.workflows import WorkflowInfo
from ..client.formats import clock, compact_json, duration
from ..client.status import NamespaceStatus

#: Width used when the output is not a terminal (pipes, CI logs), so tables do not wrap at 80.
PIPE_WIDTH = 120

#: Colour of each task, step, workflow or agent state.
STATE_STYLE = {
    "live": "green",
    "lapsed": "red",
    "killed": "bold red",
    "queued": "cyan",
    "waiting": "dim",
    "delayed": "yellow",
    "running": "bold blue",
    "completed": "green",
    "failed": "red",
    "dead": "bold red",
    "canceled": "magenta",
    "skipped": "dim",
    "input-required": "yellow",
}


def make_console() -> Console:
    """A stdout console that never highlights on its own and does not wrap tables in pipes."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=PIPE_WIDTH)


def state_text(state: str) -> Text:
    """A state word in its colour."""
    return Text(state or "-", style=STATE_STYLE.get(state, ""))


def fields_line(fields: Mapping[str, Any], skip: Iterable[str] = ()) -> str:
    """name=value pairs on one line (values cut short)."""
    skipped = set(skip)
    return " ".join(
        f"{name}={compact_json(value, 60)}" for name, value in fields.items() if name not in skipped
    )


def counts_line(counts: Mapping[str, int]) -> str:
    """'2 running, 3 completed' (zero counts left out); 'none' when all are zero."""
    parts = [f"{count} {name}" for name, count in counts.items() if count]
    return ", ".join(parts) if parts else "none"


def table(title: str, *columns: str) -> tuple[Text, Table]:
    """A heading and a plain table under it (one style for every table the commands draw)."""
    return Text(title, style="bold"), Table(
        *columns, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
    )


def status_view(status: NamespaceStatus, *, temporary: bool = False) -> RenderableType:
    """The whole namespace: two summary lines, then the agents and the queues."""
    library = status.library
    header = Text.assemble(
        ("namespace ", "dim"),
        (status.namespace, "bold"),
        ("  library ", "dim"),
        (
            f"agentfn {library.library} (schema {library.schema_version})"
            if library
            else "not deployed"
        ),
        ("  server clock ", "dim"),
        clock(status.server_ms),
    )
    lapsed = len(status.agents) - status.live_agents
    summary = Text.assemble(
        ("agents    ", "dim"),
        f"{status.live_agents} live" + (f", {lapsed} lapsed" if lapsed else ""),
        ("   workflows ", "dim"),
        counts_line(status.workflows),
        ("   messages ", "dim"),
        f"{status.messages} unacknowledged",
        ("   events ", "dim"),
        str(status.events),
        ("\ntasks     ", "dim"),
        f"{status.ready} ready, {status.running} running, {status.delayed} delayed, ",
        (f"{status.dead} dead", "bold red" if status.dead else ""),
    )
    parts: list[RenderableType] = [header, summary]
    if temporary and status.is_empty:
        parts.append(
            Text(
                "This is a temporary, empty redis-server started for this command: "
                "pass --url or set REDIS_URL to look at a real one.",
                style="yellow",
            )
        )
    if status.agents:
        heading, agents = table(
            "Agents", "agent", "status", "capabilities", "running", "deadline in"
        )
        for agent in status.agents:
            deadline = (
                duration(agent.expires_in_ms)
                if agent.expires_in_ms > 0
                else f"{duration(-agent.expires_in_ms)} ago"
            )
            agents.add_row(
                agent.id,
                state_text(agent.status),
                ",".join(agent.capabilities) or "-",
                str(agent.running),
                deadline,
            )
        parts += [Text(), heading, agents]
    if status.queues:
        heading, queues = table("Queues", "capability", "priority", "ready", "in flight")
        for queue in status.queues:
            queues.add_row(queue.capability, queue.priority, str(queue.ready), str(queue.in_flight))
        parts += [Text(), heading, queues]
    return Group(*parts)


#: Task fields listed by `task show`, in order, then its JSON values (times are shown as clock times).
_TASK_FIELDS = (
    "id",
    "state",
    "capability",
    "priority",
    "attempt",
    "max_attempts",
    "agent",
    "workflow",
    "step",
    "to",
    "idempotency_key",
    "traceparent",
    "created_ms",
    "started_ms",
    "finished_ms",
    "due_ms",
    "lease_deadline_ms",
)
_TASK_FIELDS_WHILE = {"lease_deadline_ms": ("running",), "due_ms": ("queued", "delayed")}
_TASK_VALUES = ("payload", "inputs", "result", "prompt", "error")


def task_view(task: TaskInfo) -> RenderableType:
    """A task's record: its fields, timings, JSON values, and every failed attempt."""
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="dim")
    fields.add_column()
    for name in _TASK_FIELDS:
        value = getattr(task, name)
        if (
            value is None
            or name in _TASK_FIELDS_WHILE
            and task.state not in _TASK_FIELDS_WHILE[name]
        ):
            continue
        shown = (
            state_text(value)
            if name == "state"
            else clock(value)
            if name.endswith("_ms")
            else str(value)
        )
        fields.add_row(name, shown)
    if task.started_ms:
        fields.add_row("waited", duration(task.started_ms - task.created_ms))
    if task.started_ms and task.finished_ms:
        fields.add_row("ran", duration(task.finished_ms - task.started_ms))
    for name in _TASK_VALUES:
        if getattr(task, name) is not None:
            fields.add_row(name, compact_json(getattr(task, name), 200))
    parts: list[RenderableType] = [fields]
    if task.errors:
        heading, history = table("Failed attempts", "attempt", "agent", "at", "error")
        for item in task.errors:
            history.add_row(
                str(item.get("attempt", "")),
                str(item.get("agent", "")),
                clock(item.get("at_ms")),
                str(item.get("error", "")),
            )
        parts += [Text(), heading, history]
    return Group(*parts)


def workflow_view(workflow: WorkflowInfo) -> RenderableType:
    """A workflow as a tree: each step under the last step it depends on, with its state."""
    tree = Tree(
        Text.assemble(
            (f"workflow {workflow.id}", "bold"),
            "  ",
            state_text(workflow.state.value),
            (f"  {workflow.completed}/{workflow.step_count} steps completed", "dim"),
            (f"  {workflow.error}" if workflow.error else "", "red"),
        )
    )
    steps = {step.id: step for step in workflow.steps}
    children: dict[str | None, list[str]] = {None: []}
    for step in workflow.steps:
        parents = [parent for parent in step.depends_on if parent in steps]
        children.setdefault(parents[-1] if parents else None, []).append(step.id)

    def add(branch: Tree, step_id: str) -> None:
        step = steps[step_id]
        notes = [
            f"task {step.task}" if step.task else "",
            f"{step.attempts} attempts" if step.attempts > 1 else "",
            f"ran {duration(step.finished_ms - step.started_ms)}"
            if step.finished_ms and step.started_ms
            else "",
            f"after {', '.join(step.depends_on)}" if len(step.depends_on) > 1 else "",
            step.error or "",
        ]
        node = branch.add(
            Text.assemble(
                (step_id, "bold"),
                f" [{step.capability}]  ",
                state_text(step.state.value),
                ("  " + "  ".join(note for note in notes if note), "dim"),
            )
        )
        for child in children.get(step_id, []):
            add(node, child)

    for step_id in children[None]:
        add(tree, step_id)
    return tree
