"""Agents for the trace test, each in its own process with OpenTelemetry's SDK configured to
write its finished spans, one JSON object a line, to the file $AGENTFN_TEST_SPANS."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import agentfn


def _configure_tracing(name: str) -> None:
    spans = open(os.environ["AGENTFN_TEST_SPANS"], "a", encoding="utf-8")  # noqa: SIM115 (for the process's life)
    provider = TracerProvider(
        resource=Resource.create({"service.name": name, "process.pid": os.getpid()})
    )
    provider.add_span_processor(
        SimpleSpanProcessor(
            ConsoleSpanExporter(out=spans, formatter=lambda span: span.to_json(indent=None) + "\n")
        )
    )
    trace.set_tracer_provider(provider)


def _agent(client: agentfn.Client, name: str) -> agentfn.Agent:
    _configure_tracing(name)
    agent = agentfn.Agent(client, name, concurrency=2)

    @agent.handler(name)
    def handle(task: agentfn.TaskContext) -> dict[str, Any]:
        return {"step": task.task.step, "by": name}

    @agent.handler("flaky")
    def flaky(task: agentfn.TaskContext) -> dict[str, Any]:
        """The first attempt fails and stops this agent (it claims nothing more: its fail
        carries NEXT 0), so the retry runs in the other process."""
        if task.attempt == 1:
            agent.stop()
            raise RuntimeError(f"{name} fails the first attempt")
        return {"by": name}

    @agent.on_message("ping")
    def ping(message: agentfn.Message) -> dict[str, Any]:
        return {"pong": name}

    return agent


def alpha(client: agentfn.Client) -> agentfn.Agent:
    return _agent(client, "alpha")


def beta(client: agentfn.Client) -> agentfn.Agent:
    return _agent(client, "beta")
