"""`agentfn metrics` and the dashboard's /metrics, parsed with prometheus_client's own parser and
checked against work done through the client just before."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from wsgiref.util import setup_testing_defaults

import pytest
import redis
from prometheus_client import make_wsgi_app
from prometheus_client.parser import text_string_to_metric_families

import agentfn
from agentfn.dashboard.metrics import registry_for, unavailable_when_redis_fails
from agentfn.library.migrate import list_migrations
from agentfn.library.paths import migrations_dir
from tests.dashboard_helpers import Server, get, start_server


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) -> value, for every sample of the page."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    page: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return page[(name, frozenset({"namespace": "default", **labels}.items()))]


@pytest.fixture
def known_work(client: agentfn.Client) -> agentfn.Client:
    """Two agents, six tasks (one completed, one running, one dead), a workflow, two messages."""
    client.agent_register("a1", ["x"], ttl_ms=600_000)
    client.agent_register("a2", ["y"], ttl_ms=600_000)
    for _ in range(3):
        client.submit("x", {})
    client.submit("x", {}, priority="high")
    dying = client.submit("y", {}, max_attempts=1)
    client.submit("y", {})
    first = client.claim("a1").tasks[0]  # the high-priority one
    client.complete(first.id, first.token, {"ok": True})
    client.claim("a1")  # now running
    doomed = client.claim("a2").tasks[0]
    assert doomed.id == dying
    client.fail(doomed.id, doomed.token, "no luck")
    client.create_workflow([{"id": "only", "capability": "z"}])
    client.send("a2", "a1", "note", {"n": 1})
    client.send("a2", "a1", "note", {"n": 2})
    return client


@pytest.fixture
def metrics_server(known_work: agentfn.Client, redis_url: str) -> Iterator[Server]:
    server = start_server("metrics", redis_url, "--namespace", "default")
    yield server
    server.stop()


def test_metrics_report_the_known_work(metrics_server: Server) -> None:
    status, text = get(metrics_server.url + "/metrics")
    assert status == 200
    page = samples(text)
    assert (
        value(
            page,
            "agentfn_library_info",
            node=next(
                dict(labels)["node"] for name, labels in page if name == "agentfn_library_info"
            ),
            version=agentfn.__version__,
            schema_version=str(len(list_migrations(migrations_dir()))),
        )
        == 1
    )
    assert value(page, "agentfn_agents", status="live") == 2
    assert value(page, "agentfn_agent_tasks", agent="a1") == 1
    assert value(page, "agentfn_agent_live", agent="a2") == 1
    assert value(page, "agentfn_queue_ready", capability="x", priority="normal") == 2
    assert value(page, "agentfn_queue_pending", capability="x", priority="normal") == 1
    assert value(page, "agentfn_queue_ready", capability="x", priority="high") == 0
    assert value(page, "agentfn_queue_ready", capability="y", priority="normal") == 1
    assert value(page, "agentfn_queue_ready", capability="z", priority="normal") == 1
    assert (
        0
        <= value(page, "agentfn_queue_oldest_ready_age_seconds", capability="x", priority="normal")
        < 60
    )
    assert (
        value(page, "agentfn_queue_oldest_ready_age_seconds", capability="x", priority="high") == 0
    )
    assert value(page, "agentfn_tasks", state="ready") == 4
    assert value(page, "agentfn_tasks", state="running") == 1
    assert value(page, "agentfn_tasks", state="dead") == 1
    assert value(page, "agentfn_dead_letters", capability="y") == 1
    assert value(page, "agentfn_workflows", state="running") == 1
    assert value(page, "agentfn_workflows", state="completed") == 0
    assert value(page, "agentfn_inbox_messages", agent="a1") == 2
    assert value(page, "agentfn_task_attempts_total") == 3
    assert value(page, "agentfn_events_total", type="task.submitted") == 7
    assert value(page, "agentfn_events_total", type="task.dead") == 1


def test_event_counters_only_grow_between_scrapes(
    metrics_server: Server, known_work: agentfn.Client
) -> None:
    before = samples(get(metrics_server.url + "/metrics")[1])
    known_work.submit("x", {})
    after = samples(get(metrics_server.url + "/metrics")[1])
    assert (
        value(after, "agentfn_events_total", type="task.submitted")
        == value(before, "agentfn_events_total", type="task.submitted") + 1
    )
    assert value(after, "agentfn_queue_ready", capability="x", priority="normal") == 3


def test_the_dashboard_serves_the_same_metrics(known_work: agentfn.Client, redis_url: str) -> None:
    server = start_server("dashboard", redis_url, "--namespace", "default")
    try:
        status, text = get(server.url + "/metrics")
    finally:
        server.stop()
    assert status == 200
    assert value(samples(text), "agentfn_queue_pending", capability="x", priority="normal") == 1


def test_a_scrape_that_cannot_read_redis_is_one_line_and_a_503(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Redis gone (here: a port nobody listens on) answers 503 with one line, no traceback."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    conn = redis.Redis(port=port, decode_responses=True)
    app = unavailable_when_redis_fails(make_wsgi_app(registry_for(conn, ["default"])))
    environ: dict[str, object] = {}
    setup_testing_defaults(environ)
    answered: list[str] = []
    body = b"".join(app(environ, lambda status, headers: answered.append(status)))
    assert answered == ["503 Service Unavailable"]
    assert body.startswith(b"agentfn metrics: cannot read Redis: ") and body.count(b"\n") == 1
    assert capsys.readouterr().err == body.decode()
