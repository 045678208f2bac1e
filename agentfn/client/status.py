"""A namespace's state as an operator sees it: agents, queues, leases, delays, dead letters, workflows.

Everything is read straight from the keys (the work-stream set the library keeps, its status
indexes for agents, inboxes and workflows, XINFO GROUPS, ZCARD, XLEN), never through a write and
never with SCAN, so ``agentfn status`` is safe against a production Redis and costs what the
namespace holds now, not its history. The numbers are those Redis itself keeps: a queue's
*ready* count is its consumer group's lag (or the stream length minus the pending entries when
Redis cannot compute the lag), its *in flight* count is the group's pending-entries list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, cast

import redis

from .. import keys
from ..constants import CONSUMER_GROUP, Priority, WorkflowState
from ..library.deploy import deployed_library
from ..library.info import LibraryInfo

_PRIORITY_ORDER = {priority.value: index for index, priority in enumerate(Priority)}


@dataclass(frozen=True)
class AgentRow:
    """One agent record."""

    id: str
    capabilities: tuple[str, ...]
    status: str
    """live, or lapsed (its deadline passed, whether or not a sweep has marked it yet)."""
    expires_in_ms: int
    """Until the liveness deadline (negative once lapsed)."""
    running: int
    """Tasks it holds right now."""


@dataclass(frozen=True)
class QueueRow:
    """One work stream: a capability at one priority, or an agent's direct stream."""

    stream: str
    capability: str
    """The capability, or '@<agent id>' for a direct stream."""
    priority: str
    ready: int
    """Entries not delivered to any agent yet."""
    in_flight: int
    """Entries delivered and not acknowledged (the consumer group's pending-entries list)."""


@dataclass(frozen=True)
class NamespaceStatus:
    """What ``agentfn status`` reports."""

    namespace: str
    server_ms: int
    library: LibraryInfo | None
    agents: list[AgentRow] = field(default_factory=list)
    queues: list[QueueRow] = field(default_factory=list)
    running: int = 0
    """Tasks under a lease (the leases sorted set)."""
    delayed: int = 0
    """Tasks waiting for a due time (a delay or a retry backoff)."""
    dead: int = 0
    """Entries in the dead-letter stream."""
    events: int = 0
    """Entries in the (capped) event stream."""
    messages: int = 0
    """Messages in every inbox, not acknowledged yet (unread, or read and not acknowledged)."""
    workflows: dict[str, int] = field(default_factory=dict)
    """Workflow count by state."""

    @property
    def live_agents(self) -> int:
        return sum(1 for agent in self.agents if agent.status == "live")

    @property
    def ready(self) -> int:
        return sum(queue.ready for queue in self.queues)

    @property
    def is_empty(self) -> bool:
        """Nothing at all in the namespace (a fresh one)."""
        return not (
            self.agents
            or self.queues
            or self.running
            or self.delayed
            or self.dead
            or self.events
            or self.messages
            or self.workflows
        )

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["library"] = None if self.library is None else asdict(self.library)
        data["totals"] = {
            "live_agents": self.live_agents,
            "ready": self.ready,
            "running": self.running,
            "delayed": self.delayed,
            "dead": self.dead,
        }
        return data


def server_ms(client: redis.Redis) -> int:
    """The Redis server's clock in ms (the clock every deadline is judged by)."""
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def indexed(client: redis.Redis, index: str, now: int | None = None) -> list[str]:
    """The members of one of the library's sorted-set indexes; with ``now``, only those scored
    ``now`` or later (the index scores each by when its key expires: the earlier ones are gone
    and wait for the reaper to leave the index)."""
    if now is None:
        return cast("list[str]", client.zrange(index, 0, -1))
    return cast("list[str]", client.zrange(index, now, "+inf", byscore=True))


def _pipelined(client: redis.Redis, keys_found: list[str], *commands: Any) -> list[list[Any]]:
    """For each key, the replies of ``command(pipeline, key)`` for every command: one round trip."""
    pipeline = client.pipeline(transaction=False)
    for key in keys_found:
        for command in commands:
            command(pipeline, key)
    replies = pipeline.execute(raise_on_error=False)
    width = len(commands)
    return [replies[index : index + width] for index in range(0, len(replies), width)]


def _queue_counts(groups: list[dict[str, Any]], length: int) -> tuple[int, int]:
    """(ready, in flight) of a work stream, from its XINFO GROUPS and XLEN."""
    group = next((group for group in groups if group["name"] == CONSUMER_GROUP), None)
    if group is None:
        return length, 0
    pending = int(group.get("pending") or 0)
    lag = group.get("lag")
    return (int(lag) if lag is not None else max(length - pending, 0)), pending


def work_streams(client: redis.Redis, namespace: str) -> list[str]:
    """Every capability stream and every direct stream of the namespace: the library keeps each
    work stream it creates in the `streams` set, so no SCAN is needed (on a cluster neither)."""
    return sorted(
        key if isinstance(key, str) else key.decode()
        for key in client.smembers(keys.streams(namespace))
    )


def held_tasks(client: redis.Redis, namespace: str) -> dict[str, int]:
    """Agent id -> tasks it holds: its consumer's pending entries summed over the work streams
    (the summary form of XPENDING, one per stream, in one round trip)."""
    streams = work_streams(client, namespace)
    held: dict[str, int] = {}
    for (summary,) in _pipelined(client, streams, lambda p, k: p.xpending(k, CONSUMER_GROUP)):
        if isinstance(summary, Exception):  # listed, but deleted since: holds nothing
            continue
        for consumer in summary.get("consumers") or []:
            held[consumer["name"]] = held.get(consumer["name"], 0) + int(consumer["pending"])
    return held


def read_queues(client: redis.Redis, namespace: str) -> list[QueueRow]:
    """Every capability stream (by capability, then priority) and every direct stream."""
    root = keys.root(namespace)
    streams = work_streams(client, namespace)
    rows = []
    for stream, (groups, length) in zip(
        streams,
        _pipelined(client, streams, lambda p, k: p.xinfo_groups(k), lambda p, k: p.xlen(k)),
        strict=True,
    ):
        if isinstance(groups, Exception):  # listed, but deleted since: nothing to count
            continue
        kind, _, rest = stream[len(root) + 1 :].partition(":")
        capability, priority = (
            rest.rpartition(":")[::2] if kind == "queue" else ("@" + rest, "direct")
        )
        rows.append(QueueRow(stream, capability, priority, *_queue_counts(groups, length)))
    rows.sort(
        key=lambda row: (row.capability, _PRIORITY_ORDER.get(row.priority, len(_PRIORITY_ORDER)))
    )
    return rows


def read_agents(client: redis.Redis, namespace: str, now: int) -> list[AgentRow]:
    """Every agent record (live ones first, then by id): the live set and the lapsed agents
    whose record is kept."""
    ids = list(
        dict.fromkeys(
            [
                *indexed(client, keys.agents(namespace)),
                *indexed(client, keys.lapsed(namespace), now),
            ]
        )
    )
    held = held_tasks(client, namespace)
    rows = []
    for agent_id, ((status, capabilities, expires),) in zip(
        ids,
        _pipelined(
            client,
            ids,
            lambda p, k: p.hmget(keys.agent(namespace, k), "status", "capabilities", "expires_ms"),
        ),
        strict=True,
    ):
        if status is None:  # its record expired or went since the index was read
            continue
        expires_in = int(expires or 0) - now
        rows.append(
            AgentRow(
                id=agent_id,
                capabilities=tuple(c for c in (capabilities or "").split(",") if c),
                status="live" if status == "live" and expires_in > 0 else "lapsed",
                expires_in_ms=expires_in,
                running=held.get(agent_id, 0),
            )
        )
    rows.sort(key=lambda row: (row.status != "live", row.id))
    return rows


@dataclass(frozen=True)
class WorkflowRow:
    """One workflow record, as lists of workflows show it."""

    id: str
    state: str
    created_ms: int
    step_count: int
    completed: int


def read_workflow_rows(client: redis.Redis, namespace: str) -> list[WorkflowRow]:
    """Every workflow record, newest first (from the library's index of workflows by state)."""
    ids = list(
        dict.fromkeys(
            workflow_id
            for state in WorkflowState
            for workflow_id in indexed(client, keys.workflows(namespace, state.value))
        )
    )
    fields = _pipelined(
        client,
        ids,
        lambda p, k: p.hmget(
            keys.workflow(namespace, k), "state", "created_ms", "step_count", "completed"
        ),
    )
    rows = [
        WorkflowRow(workflow_id, state, int(created or 0), int(steps or 0), int(done or 0))
        for workflow_id, ((state, created, steps, done),) in zip(ids, fields, strict=True)
        if state is not None  # its keys expired since the index was read
    ]
    rows.sort(key=lambda row: (-row.created_ms, row.id))
    return rows


def count_workflows(rows: list[WorkflowRow]) -> dict[str, int]:
    """How many workflows are in each state (every state listed, zeros included, once any exists)."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    if counts:
        counts = {**{state.value: 0 for state in WorkflowState}, **counts}
    return counts


def read_workflows(client: redis.Redis, namespace: str) -> dict[str, int]:
    """How many workflows are in each state (every state listed, zeros included, once any exists)."""
    return count_workflows(read_workflow_rows(client, namespace))


def read_inboxes(client: redis.Redis, namespace: str) -> dict[str, int]:
    """Agent id -> messages in its inbox not acknowledged yet (unread, or read and not acknowledged)."""
    agent_ids = indexed(client, keys.inboxes(namespace), server_ms(client))
    lengths = _pipelined(client, agent_ids, lambda p, k: p.xlen(keys.inbox(namespace, k)))
    return dict(zip(agent_ids, (length for (length,) in lengths), strict=True))


def read_status(client: redis.Redis, namespace: str) -> NamespaceStatus:
    """The namespace's state, read from its keys (no writes)."""
    now = server_ms(client)
    return NamespaceStatus(
        namespace=namespace,
        server_ms=now,
        library=deployed_library(client, namespace),
        agents=read_agents(client, namespace, now),
        queues=read_queues(client, namespace),
        running=client.zcard(keys.leases(namespace)),
        delayed=client.zcard(keys.delayed(namespace)),
        dead=client.xlen(keys.dead_letters(namespace)),
        events=client.xlen(keys.events(namespace)),
        messages=sum(read_inboxes(client, namespace).values()),
        workflows=read_workflows(client, namespace),
    )
