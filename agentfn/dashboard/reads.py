"""What each page shows, read from Redis (synchronously: the server runs these in a thread pool).

The namespace's state comes from the status module (the same reads as ``agentfn status``) and
the library's read functions (agentfn_agent_find, agentfn_wf_get, agentfn_ctx_get,
agentfn_task_get); the rest from the dead-letter and event streams. Nothing here writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from .. import keys
from ..client.api.tasks import TaskInfo
from ..client.api.workflows import WorkflowInfo
from ..client.client import Client
from ..client.status import count_workflows, read_status, read_workflow_rows, server_ms
from ..errors import NotFound
from ..replies import range_entries
from .activity import Activity
from .graph import layout

#: Workflows listed on the overview (the newest).
OVERVIEW_WORKFLOWS = 12

#: Workflows listed on the workflows page.
WORKFLOWS_PAGE = 200

#: Dead letters listed on the overview, and on their page.
OVERVIEW_DEAD = 5
DEAD_PAGE = 200

#: Events listed on the overview, on the events page, and looked through for a task's own events.
OVERVIEW_EVENTS = 8
EVENTS_PAGE = 100
TASK_EVENTS_SCAN = 2_000


@dataclass(frozen=True)
class Namespace:
    """What a page needs to read one namespace."""

    redis: redis.Redis
    client: Client
    namespace: str
    activity: Activity


def event_record(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """An event stream entry as the pages show it: id, ms (its time), type, then its fields."""
    return {"id": entry_id, "ms": int(entry_id.split("-")[0]), **fields}


def recent_events(conn: redis.Redis, namespace: str, count: int) -> list[dict[str, Any]]:
    """The newest ``count`` events, newest first."""
    return [
        event_record(entry_id, fields)
        for entry_id, fields in range_entries(conn.xrevrange(keys.events(namespace), count=count))
    ]


def dead_letters(conn: redis.Redis, namespace: str, count: int) -> list[dict[str, Any]]:
    """The newest ``count`` dead letters, newest first (``errors`` decoded)."""
    records = []
    for entry_id, fields in range_entries(
        conn.xrevrange(keys.dead_letters(namespace), count=count)
    ):
        record = event_record(entry_id, fields)
        try:
            record["errors"] = json.loads(record.get("errors") or "[]")
        except ValueError:
            record["errors"] = []
        records.append(record)
    return records


def overview(ns: Namespace) -> dict[str, Any]:
    status = read_status(ns.redis, ns.namespace)
    heartbeats = {agent.id: agent.heartbeat_ms for agent in ns.client.agent_find()}
    workflows = read_workflow_rows(ns.redis, ns.namespace)
    return {
        "status": status,
        "heartbeats": heartbeats,
        "workflow_counts": count_workflows(workflows),
        "workflows": workflows[:OVERVIEW_WORKFLOWS],
        "workflow_total": len(workflows),
        "dead": dead_letters(ns.redis, ns.namespace, OVERVIEW_DEAD),
        "events": recent_events(ns.redis, ns.namespace, OVERVIEW_EVENTS),
        "activity": ns.activity.summary(status.server_ms),
    }


def workflows(ns: Namespace, state: str = "") -> dict[str, Any]:
    rows = read_workflow_rows(ns.redis, ns.namespace)
    shown = [row for row in rows if not state or row.state == state]
    return {
        "workflows": shown[:WORKFLOWS_PAGE],
        "workflow_total": len(shown),
        "workflow_counts": count_workflows(rows),
        "state_filter": state,
        "now_ms": server_ms(ns.redis),
    }


def workflow(ns: Namespace, workflow_id: str) -> dict[str, Any]:
    """A workflow, its graph, its shared context (NotFound once it expired)."""
    info: WorkflowInfo = ns.client.get_workflow(workflow_id)
    return {
        "workflow": info,
        "graph": layout(info.steps),
        "context": ns.client.ctx_get(workflow_id),
        "now_ms": server_ms(ns.redis),
    }


def task(ns: Namespace, task_id: str) -> dict[str, Any]:
    """A task's record and the events that name it (among the newest TASK_EVENTS_SCAN)."""
    info: TaskInfo = ns.client.get_task(task_id)
    events = [
        event
        for event in recent_events(ns.redis, ns.namespace, TASK_EVENTS_SCAN)
        if event.get("task") == task_id
        or (
            info.workflow
            and event.get("workflow") == info.workflow
            and event.get("step") == info.step
        )
    ]
    return {"task": info, "task_events": events, "now_ms": server_ms(ns.redis)}


def dead(ns: Namespace) -> dict[str, Any]:
    return {
        "dead": dead_letters(ns.redis, ns.namespace, DEAD_PAGE),
        "dead_total": ns.redis.xlen(keys.dead_letters(ns.namespace)),
    }


def events(ns: Namespace) -> dict[str, Any]:
    return {"events": recent_events(ns.redis, ns.namespace, EVENTS_PAGE)}


@dataclass(frozen=True)
class View:
    """A page's live part: how to read it, and the ids of the fragments that are re-rendered."""

    read: Callable[..., dict[str, Any]]
    fragments: tuple[str, ...]


#: Every view, by name; a view of one object is named '<name>:<id>' (workflow:w3, task:t7).
VIEWS: dict[str, View] = {
    "overview": View(
        overview, ("summary", "activity", "agents", "queues", "workflows", "dead", "recent-events")
    ),
    "workflows": View(workflows, ("workflow-list",)),
    "workflow": View(workflow, ("wf-summary", "wf-graph", "wf-steps", "wf-context")),
    "task": View(task, ("task-record", "task-errors", "task-events")),
    "dead": View(dead, ("dead-list",)),
    "events": View(events, ()),
}


def read_view(ns: Namespace, view: str) -> dict[str, Any]:
    """The context of a view ('overview', 'workflows?state=...', 'workflow:<id>', 'task:<id>'...)."""
    name, _, argument = view.partition(":")
    if name == "workflows":
        return workflows(ns, argument)
    if name not in VIEWS:
        raise NotFound(f"no view {view!r}")
    return VIEWS[name].read(ns, argument) if argument else VIEWS[name].read(ns)
