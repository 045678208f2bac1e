"""One trace across agents: the span current in this process (OpenTelemetry's in-memory
exporter) when it creates a workflow, submits a task or sends a message is the parent of every
attempt that two agent processes run for them (a retry included) and of the message's handler."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agentfn
from tests.agent_fixtures import REPO, spawn_worker, wait_for, wait_for_task
from tests.dashboard_helpers import ENV

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def agent_spans(
    client: agentfn.Client, redis_url: str, tmp_path: Path
) -> Iterator[dict[str, Path]]:
    """Agent processes alpha and beta (tests.trace_agents), running while the test does, each
    writing its spans to a file (agent name -> file)."""
    files = {name: tmp_path / f"{name}.jsonl" for name in ("alpha", "beta")}
    workers = [
        spawn_worker(redis_url, f"tests.trace_agents:{name}", env={"AGENTFN_TEST_SPANS": str(path)})
        for name, path in files.items()
    ]
    try:
        wait_for(
            client,
            lambda: client.agent_find("alpha") and client.agent_find("beta"),
            "both agents registered",
            timeout=30,
        )
        yield files
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=15)


def exported(files: dict[str, Path]) -> list[dict[str, Any]]:
    """The spans the agent processes finished, as JSON objects."""
    return [json.loads(line) for path in files.values() for line in path.read_text().splitlines()]


def span_ids(span: Any) -> tuple[str, str]:
    """An in-process span's trace id and span id as the JSON exporter writes them."""
    context = span.get_span_context()
    return f"0x{context.trace_id:032x}", f"0x{context.span_id:016x}"


def traceparent_of(span: Any) -> str:
    """A span's W3C traceparent (its flags included)."""
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def in_memory_tracer() -> tuple[Any, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # this test's own, not the process's global one
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def test_one_trace_spans_the_workflow_and_the_attempts_in_two_agent_processes(
    client: agentfn.Client, agent_spans: dict[str, Path]
) -> None:
    tracer, exporter = in_memory_tracer()
    with tracer.start_as_current_span("orchestrate") as root:
        workflow_id = client.create_workflow(
            [
                {"id": "gather", "capability": "alpha"},
                {"id": "left", "capability": "beta", "depends_on": ["gather"]},
                {"id": "right", "capability": "beta", "depends_on": ["gather"]},
                {"id": "report", "capability": "alpha", "depends_on": ["left", "right"]},
            ]
        )
        with tracer.start_as_current_span("wait for the workflow") as waiting:
            info = client.wait_workflow(workflow_id, timeout=30)
            waiting.set_attribute("agentfn.workflow_state", info.state.value)
    assert info.state == agentfn.WorkflowState.COMPLETED

    trace_id, root_id = span_ids(root)
    attempts = exported(agent_spans)
    assert sorted(span["attributes"]["agentfn.step"] for span in attempts) == [
        "gather",
        "left",
        "report",
        "right",
    ]
    assert {span["context"]["trace_id"] for span in attempts} == {trace_id}
    assert {span["parent_id"] for span in attempts} == {root_id}
    assert {span["resource"]["attributes"]["service.name"] for span in attempts} == {
        "alpha",
        "beta",
    }
    assert len({span["resource"]["attributes"]["process.pid"] for span in attempts}) == 2
    assert {span["attributes"]["agentfn.outcome"] for span in attempts} == {"completed"}
    assert {span["attributes"]["agentfn.workflow"] for span in attempts} == {workflow_id}
    mine = {span.name: span for span in exporter.get_finished_spans()}
    assert {span.context.trace_id for span in mine.values()} == {root.get_span_context().trace_id}
    assert mine["wait for the workflow"].attributes["agentfn.workflow_state"] == "completed"
    assert info.traceparent == traceparent_of(root)
    assert client.ctx_get(workflow_id).document == {}  # the shared context is the agents' own


def test_one_trace_spans_a_submit_retried_in_another_process_and_a_message_handler(
    client: agentfn.Client, agent_spans: dict[str, Path]
) -> None:
    tracer, _ = in_memory_tracer()
    client.agent_register("orchestrator", [])  # reading its inbox (the reply) takes its secret
    with tracer.start_as_current_span("ask") as asking:
        reply = client.request("orchestrator", "beta", "ping", {"q": 1}, timeout=30)
    with tracer.start_as_current_span("submit") as submitting:
        task_id = client.submit("flaky", {"n": 1}, backoff_ms=0, max_attempts=3)
    task = wait_for_task(client, task_id, {"completed"}, timeout=30)
    assert reply.content == {"pong": "beta"}
    assert (task.attempt, task.traceparent) == (2, traceparent_of(submitting))

    spans = exported(agent_spans)
    attempts = sorted(
        (span for span in spans if span["name"] == "agentfn.attempt flaky"),
        key=lambda span: span["attributes"]["agentfn.attempt"],
    )
    trace_id, submit_id = span_ids(submitting)
    assert [span["attributes"]["agentfn.outcome"] for span in attempts] == ["failed", "completed"]
    assert {span["context"]["trace_id"] for span in attempts} == {trace_id}
    assert {span["parent_id"] for span in attempts} == {submit_id}
    assert {span["attributes"]["agentfn.task_id"] for span in attempts} == {task_id}
    processes = [span["resource"]["attributes"]["process.pid"] for span in attempts]
    assert len(set(processes)) == 2, "the retry ran in the other agent process"
    assert attempts[0]["status"]["status_code"] == "ERROR"

    (handled,) = [span for span in spans if span["name"] == "agentfn.message ping"]
    assert (handled["context"]["trace_id"], handled["parent_id"]) == span_ids(asking)
    assert handled["resource"]["attributes"]["service.name"] == "beta"
    assert handled["attributes"]["agentfn.outcome"] == "handled"
    assert handled["attributes"]["agentfn.from"] == "orchestrator"


def test_an_explicit_traceparent_travels_with_a_task_and_a_message(client: agentfn.Client) -> None:
    client.agent_register("a1", ["x"])
    task_id = client.submit("x", {}, traceparent=TRACEPARENT)
    assert client.get_task(task_id).traceparent == TRACEPARENT
    assert client.claim("a1").tasks[0].traceparent == TRACEPARENT
    client.send("p1", "a1", "note", {}, traceparent=TRACEPARENT)
    client.broadcast("p1", "note", {})
    traced, plain = client.read_messages("a1")
    assert (traced.traceparent, plain.traceparent) == (TRACEPARENT, None)


def test_async_client_and_batch_attach_the_current_span(
    client: agentfn.Client, redis_url: str
) -> None:
    tracer, _ = in_memory_tracer()
    client.agent_register("a1", ["x"])

    async def traced_calls() -> tuple[str, str]:
        connection = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        try:
            async_client = agentfn.AsyncClient(connection, "default")
            with tracer.start_as_current_span("async") as span:
                task_id = await async_client.submit("x", {})
                await async_client.broadcast("p1", "note", {})
            return task_id, traceparent_of(span)
        finally:
            await connection.aclose()

    task_id, expected = asyncio.run(traced_calls())
    assert client.get_task(task_id).traceparent == expected
    assert [message.traceparent for message in client.read_messages("a1")] == [expected]
    batch = agentfn.Batch(client)
    with tracer.start_as_current_span("batch") as span:
        batch.submit("x", {})
    (batched,) = batch.execute()
    assert client.get_task(batched).traceparent == traceparent_of(span)


def test_without_a_current_span_nothing_carries_a_trace_context(client: agentfn.Client) -> None:
    workflow_id = client.create_workflow([{"id": "only", "capability": "nobody"}])
    assert client.get_workflow(workflow_id).traceparent is None
    assert client.get_task(client.submit("nobody", {})).traceparent is None


def test_without_opentelemetry_agents_run_as_before(redis_url: str) -> None:
    """OpenTelemetry made unimportable: a workflow runs through an in-process agent unchanged."""
    code = f"""
import sys
sys.modules.update(dict.fromkeys(("opentelemetry", "opentelemetry.trace")))
import agentfn, redis
connection = redis.Redis.from_url({redis_url!r}, decode_responses=True)
agentfn.deploy(connection, "plain")
client = agentfn.Client(connection, "plain")
agent = agentfn.Agent(client, "plain-1")
agent.handler("echo")(lambda task: task.payload)
agent.start()
workflow_id = client.create_workflow([{{"id": "one", "capability": "echo", "input": 7}}])
info = client.wait_workflow(workflow_id, timeout=20)
agent.stop(now=True)
print(info.state.value, info.results, client.ctx_get(workflow_id).document)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO, env=ENV
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "completed {'one': 7} {}"
