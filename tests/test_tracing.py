"""One trace across agents: the orchestrator's span (in this process, OpenTelemetry's in-memory
exporter) is the parent of every attempt that two agent processes run for its workflow, and of
the wait that ends with the workflow's completion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agentfn
from tests.agent_fixtures import REPO, spawn_worker, wait_for
from tests.dashboard_helpers import ENV


def test_one_trace_spans_the_workflow_and_the_attempts_in_two_agent_processes(
    client: agentfn.Client, redis_url: str, tmp_path: Path
) -> None:
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
        exporter = InMemorySpanExporter()
        provider = TracerProvider()  # this test's own, not the process's global one
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
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
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=15)

    trace_id = f"0x{root.get_span_context().trace_id:032x}"
    root_id = f"0x{root.get_span_context().span_id:016x}"
    attempts = [
        json.loads(line) for path in files.values() for line in path.read_text().splitlines()
    ]
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
    assert (
        client.ctx_get(workflow_id).document["_trace"]["traceparent"].split("-")[1] == trace_id[2:]
    )


def test_without_a_current_span_a_workflow_carries_no_trace_context(client: agentfn.Client) -> None:
    workflow_id = client.create_workflow([{"id": "only", "capability": "nobody"}])
    assert client.ctx_get(workflow_id).document == {}


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
