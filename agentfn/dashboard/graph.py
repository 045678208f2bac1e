"""A workflow's graph laid out for SVG: steps in columns by depth, edges from each dependency.

A step's column is the length of the longest dependency path leading to it, so a fan-out spreads
down one column and a fan-in gathers into the next one; within a column steps keep their
definition order. The drawing itself is a template (fragments/wf-graph.html) that colours each
step by its state through CSS classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..client.api.workflows import StepInfo

#: Size of a step's box and the gaps between boxes, in SVG user units (px).
NODE_WIDTH = 168
NODE_HEIGHT = 46
COLUMN_GAP = 64
ROW_GAP = 18
MARGIN = 12


@dataclass(frozen=True)
class Node:
    """A step's box."""

    id: str
    capability: str
    state: str
    """The step's state, except that a queued step whose task is running or delayed shows that."""
    attempts: int
    prompt: str | None
    """What the step asked for, when it waits for input."""
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    """A dependency: from the right edge of ``source``'s box to the left edge of ``target``'s."""

    source: str
    target: str
    path: str
    done: bool
    """True once the dependency completed."""


@dataclass(frozen=True)
class Layout:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def display_state(step: StepInfo) -> str:
    """The state a step is drawn in: its own, or its task's while it is queued (running, delayed)."""
    state = step.state.value
    if state == "queued" and step.task_state in ("running", "delayed"):
        return step.task_state
    return state


def _depths(steps: Sequence[StepInfo]) -> dict[str, int]:
    """Step id -> length of the longest dependency path to it (the graph is acyclic)."""
    by_id = {step.id: step for step in steps}
    depth: dict[str, int] = {}

    def visit(step_id: str) -> int:
        if step_id not in depth:
            parents = [parent for parent in by_id[step_id].depends_on if parent in by_id]
            depth[step_id] = 1 + max((visit(parent) for parent in parents), default=-1)
        return depth[step_id]

    for step in steps:
        visit(step.id)
    return depth


def layout(steps: Sequence[StepInfo]) -> Layout:
    """Place every step and draw every dependency."""
    depth = _depths(steps)
    columns: dict[int, list[StepInfo]] = {}
    for step in steps:
        columns.setdefault(depth[step.id], []).append(step)
    tallest = max((len(column) for column in columns.values()), default=0)
    height = 2 * MARGIN + tallest * NODE_HEIGHT + max(tallest - 1, 0) * ROW_GAP
    nodes: dict[str, Node] = {}
    for column_index, column in sorted(columns.items()):
        used = len(column) * NODE_HEIGHT + (len(column) - 1) * ROW_GAP
        top = MARGIN + (height - 2 * MARGIN - used) // 2
        for row, step in enumerate(column):
            prompt = (
                step.prompt
                if isinstance(step.prompt, str) or step.prompt is None
                else str(step.prompt)
            )
            nodes[step.id] = Node(
                step.id,
                step.capability,
                display_state(step),
                step.attempts,
                prompt if step.state.value == "input-required" else None,
                MARGIN + column_index * (NODE_WIDTH + COLUMN_GAP),
                top + row * (NODE_HEIGHT + ROW_GAP),
            )
    edges = []
    for step in steps:
        target = nodes[step.id]
        for parent_id in step.depends_on:
            source = nodes.get(parent_id)
            if source is None:
                continue
            x1, y1 = source.x + NODE_WIDTH, source.y + NODE_HEIGHT // 2
            x2, y2 = target.x - 4, target.y + NODE_HEIGHT // 2
            bend = COLUMN_GAP // 2
            edges.append(
                Edge(
                    parent_id,
                    step.id,
                    f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}",
                    source.state == "completed",
                )
            )
    width = 2 * MARGIN + len(columns) * NODE_WIDTH + max(len(columns) - 1, 0) * COLUMN_GAP
    return Layout(list(nodes.values()), edges, width, height)
