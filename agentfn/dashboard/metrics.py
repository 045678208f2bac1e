"""Prometheus metrics of namespaces, computed at each scrape from the same reads as ``agentfn status``.

Gauges (labels: namespace, and what each names):

    agentfn_library_info{node,version,schema_version}    1 per Redis node serving the namespace
    agentfn_agents{status}                               agents live / lapsed
    agentfn_agent_live{agent} agentfn_agent_tasks{agent} each agent's liveness and tasks held
    agentfn_queue_ready{capability,priority}             entries not delivered yet
    agentfn_queue_pending{capability,priority}           delivered, not acknowledged (in flight)
    agentfn_queue_oldest_ready_age_seconds{capability,priority}
    agentfn_tasks{state}                                 ready, running, delayed, dead
    agentfn_dead_letters{capability}                     dead letters by capability
    agentfn_workflows{state}                             workflows by state
    agentfn_inbox_messages{agent}                        unacknowledged messages per inbox

Counters, from the event stream, since this exporter started (the first scrape counts what the
capped stream still holds): ``agentfn_events_total{type}`` and ``agentfn_task_attempts_total``
(task.running events: one per attempt started).
"""

from __future__ import annotations

import socket
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import redis
from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import keys
from ..client.status import QueueRow, count_workflows, read_inboxes, read_status, read_workflow_rows
from ..constants import CONSUMER_GROUP
from ..errors import AgentfnError
from ..library.deploy import deployed_library
from ..replies import range_entries

#: Event stream entries read per call while catching up.
EVENT_BATCH = 5_000


def oldest_ready_ms(conn: redis.Redis, queues: list[QueueRow]) -> dict[str, int]:
    """Stream key -> the time (ms) of its oldest entry not delivered yet, for queues with ready work."""
    waiting = [queue.stream for queue in queues if queue.ready > 0]
    pipeline = conn.pipeline(transaction=False)
    for stream in waiting:
        pipeline.xinfo_groups(stream)
    delivered = {}
    for stream, groups in zip(waiting, pipeline.execute(), strict=True):
        group = next((group for group in groups if group["name"] == CONSUMER_GROUP), None)
        delivered[stream] = group["last-delivered-id"] if group else "0-0"
    for stream in waiting:
        pipeline.xrange(stream, min=f"({delivered[stream]}", count=1)
    return {
        stream: int(entries[0][0].split("-")[0])
        for stream, entries in zip(waiting, pipeline.execute(), strict=True)
        if entries
    }


def _node(conn: redis.Redis) -> str:
    settings = conn.get_connection_kwargs()
    return f"{settings.get('host', '?')}:{settings.get('port', '?')}"


class NamespaceCollector(Collector):
    """Reads every namespace at each scrape."""

    def __init__(self, conn: redis.Redis, namespaces: Iterable[str]) -> None:
        self.conn = conn
        self.namespaces = list(namespaces)
        self._lock = threading.Lock()
        self._cursors = {namespace: "-" for namespace in self.namespaces}
        self._events = {namespace: Counter[str]() for namespace in self.namespaces}

    def _count_events(self, namespace: str) -> Counter[str]:
        """Count the event stream's entries after the last one counted."""
        stream, counts = keys.events(namespace), self._events[namespace]
        while True:
            cursor = self._cursors[namespace]
            entries = range_entries(
                self.conn.xrange(
                    stream, min=cursor if cursor == "-" else f"({cursor}", count=EVENT_BATCH
                )
            )
            for _, fields in entries:
                counts[fields.get("type", "unknown")] += 1
            if entries:
                self._cursors[namespace] = entries[-1][0]
            if len(entries) < EVENT_BATCH:
                return counts

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            yield from self._collect()

    def _collect(self) -> Iterable[Metric]:
        def gauge(name: str, documentation: str, *labels: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, documentation, labels=["namespace", *labels])

        library = gauge(
            "agentfn_library_info",
            "The agentfn library deployed (1 per node)",
            "node",
            "version",
            "schema_version",
        )
        agents = gauge("agentfn_agents", "Agents by liveness", "status")
        agent_live = gauge(
            "agentfn_agent_live", "1 while the agent is live, 0 once it lapsed", "agent"
        )
        agent_tasks = gauge("agentfn_agent_tasks", "Tasks the agent holds", "agent")
        ready = gauge(
            "agentfn_queue_ready",
            "Queue entries not delivered to an agent yet",
            "capability",
            "priority",
        )
        pending = gauge(
            "agentfn_queue_pending",
            "Queue entries delivered and not acknowledged (in flight)",
            "capability",
            "priority",
        )
        oldest = gauge(
            "agentfn_queue_oldest_ready_age_seconds",
            "Age of the oldest entry not delivered yet",
            "capability",
            "priority",
        )
        tasks = gauge("agentfn_tasks", "Tasks by state (ready, running, delayed, dead)", "state")
        dead = gauge("agentfn_dead_letters", "Dead letters by capability", "capability")
        workflows = gauge("agentfn_workflows", "Workflows by state", "state")
        inboxes = gauge(
            "agentfn_inbox_messages", "Unacknowledged messages in an agent's inbox", "agent"
        )
        events = CounterMetricFamily(
            "agentfn_events",
            "Events seen on the namespace's event stream",
            labels=["namespace", "type"],
        )
        attempts = CounterMetricFamily(
            "agentfn_task_attempts",
            "Task attempts started (task.running events)",
            labels=["namespace"],
        )
        node = _node(self.conn)
        for namespace in self.namespaces:
            status = read_status(self.conn, namespace)
            info = deployed_library(self.conn, namespace)
            if info is not None:
                library.add_metric([namespace, node, info.library, str(info.schema_version)], 1)
            live = status.live_agents
            agents.add_metric([namespace, "live"], live)
            agents.add_metric([namespace, "lapsed"], len(status.agents) - live)
            for agent in status.agents:
                agent_live.add_metric([namespace, agent.id], 1 if agent.status == "live" else 0)
                agent_tasks.add_metric([namespace, agent.id], agent.running)
            ages = oldest_ready_ms(self.conn, status.queues)
            for queue in status.queues:
                labels = [namespace, queue.capability, queue.priority]
                ready.add_metric(labels, queue.ready)
                pending.add_metric(labels, queue.in_flight)
                since = ages.get(queue.stream)
                oldest.add_metric(
                    labels, 0.0 if since is None else max(status.server_ms - since, 0) / 1000
                )
            for state, count in (
                ("ready", status.ready),
                ("running", status.running),
                ("delayed", status.delayed),
                ("dead", status.dead),
            ):
                tasks.add_metric([namespace, state], count)
            by_capability = Counter(
                fields.get("capability", "")
                for _, fields in range_entries(self.conn.xrange(keys.dead_letters(namespace)))
            )
            for capability, count in sorted(by_capability.items()):
                dead.add_metric([namespace, capability], count)
            for state, count in count_workflows(read_workflow_rows(self.conn, namespace)).items():
                workflows.add_metric([namespace, state], count)
            for agent_id, count in sorted(read_inboxes(self.conn, namespace).items()):
                inboxes.add_metric([namespace, agent_id], count)
            counts = self._count_events(namespace)
            for kind, count in sorted(counts.items()):
                events.add_metric([namespace, kind], count)
            attempts.add_metric([namespace], counts.get("task.running", 0))
        yield from (
            library,
            agents,
            agent_live,
            agent_tasks,
            ready,
            pending,
            oldest,
            tasks,
            dead,
            workflows,
            inboxes,
            events,
            attempts,
        )


def registry_for(conn: redis.Redis, namespaces: Iterable[str]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NamespaceCollector(conn, namespaces))
    return registry


def exposition(conn: redis.Redis, namespaces: Iterable[str]) -> Callable[[], bytes]:
    """A function returning the metrics page (the text format), read at each call."""
    registry = registry_for(conn, namespaces)
    return lambda: generate_latest(registry)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass


def unavailable_when_redis_fails(app: Callable[..., Any]) -> Callable[..., Any]:
    """The WSGI app, answering 503 with one line (also written to stderr) when a scrape cannot
    read Redis (down, a NOPERM of the user, the library gone) instead of a traceback and a 500."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            return app(environ, start_response)  # type: ignore[no-any-return]
        except (redis.RedisError, AgentfnError) as error:
            line = f"agentfn metrics: cannot read Redis: {error}"
            print(line, file=sys.stderr, flush=True)
            start_response(
                "503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")]
            )
            return [line.encode() + b"\n"]

    return guarded


def serve_metrics(conn: redis.Redis, namespaces: Iterable[str], sock: socket.socket) -> None:
    """Serve /metrics on a listening socket until interrupted (one scrape at a time)."""
    server = WSGIServer(sock.getsockname()[:2], _QuietHandler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_name, server.server_port = str(sock.getsockname()[0]), int(sock.getsockname()[1])
    server.setup_environ()
    server.set_app(unavailable_when_redis_fails(make_wsgi_app(registry_for(conn, namespaces))))
    try:
        server.serve_forever()
    finally:
        server.server_close()
