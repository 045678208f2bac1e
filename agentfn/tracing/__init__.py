"""Traces across agents with OpenTelemetry (optional: ``pip install 'agentfn[otel]'``).

Nothing here imports OpenTelemetry unless the application already did: tracing is on in a
process only when ``opentelemetry.trace`` is loaded there and

- (creating a workflow) a span is current: its W3C trace context (``traceparent``, and
  ``tracestate`` when set) goes into the workflow's shared context document under ``_trace``,
  written atomically with the workflow, so every step's task can find it;
- (running a task) an SDK TracerProvider is configured: the runtime opens a span per attempt
  (``agentfn.attempt <capability>``, attributes capability, task id, attempt, agent, workflow,
  step and the outcome), the child of the context its workflow carries, and current while the
  handler runs (so the handler's own spans nest under it).

Without OpenTelemetry, or without a configured provider, every function here returns at once
and changes nothing.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

if TYPE_CHECKING:
    from ..agent import TaskContext
    from ..executors import Outcome

#: The key of a workflow's shared context that carries its trace context.
TRACE_FIELD = "_trace"


def _trace_module() -> Any:
    """opentelemetry.trace when the application loaded it, else None (never imported here)."""
    return sys.modules.get("opentelemetry.trace")


def with_trace_context(context: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A workflow's initial shared context plus the current span's trace context (unchanged
    when no span is current)."""
    trace = _trace_module()
    if trace is None or not trace.get_current_span().get_span_context().is_valid:
        return context
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return {**(context or {}), TRACE_FIELD: carrier} if carrier else context


def _configured(trace: Any) -> bool:
    return not isinstance(trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def _carrier(task_context: TaskContext) -> dict[str, str] | None:
    """The trace context the task's workflow carries, if any."""
    from ..errors import AgentfnError

    workflow = task_context.task.workflow
    if not workflow:
        return None
    try:
        carried = task_context.client.ctx_get(workflow).document.get(TRACE_FIELD)
    except AgentfnError:
        return None
    return carried if isinstance(carried, dict) else None


def _ignore(outcome: Outcome) -> None:
    return None


def outcome_name(outcome: Outcome) -> str:
    if outcome.kind == "complete":
        return "input-required" if outcome.prompt is not None else "completed"
    return {"fail": "failed", "drop": "dropped"}.get(outcome.kind, outcome.kind)


@contextlib.contextmanager
def attempt_span(task_context: TaskContext) -> Iterator[Callable[[Outcome], None]]:
    """A span around one attempt of a handler (or nothing); yields a function to record its outcome."""
    trace = _trace_module()
    if trace is None or not _configured(trace):
        yield _ignore
        return
    from opentelemetry.propagate import extract

    task = task_context.task
    carrier = _carrier(task_context)
    attributes = {"agentfn.capability": task.capability, "agentfn.task_id": task.id,
                  "agentfn.attempt": task.attempt, "agentfn.agent": task_context.agent_id}
    if task.workflow:
        attributes.update({"agentfn.workflow": task.workflow, "agentfn.step": task.step or ""})
    tracer = trace.get_tracer("agentfn")
    with tracer.start_as_current_span(f"agentfn.attempt {task.capability}", context=extract(carrier) if carrier
                                      else None, kind=trace.SpanKind.CONSUMER, attributes=attributes) as span:

        def record(outcome: Outcome) -> None:
            span.set_attribute("agentfn.outcome", outcome_name(outcome))
            if outcome.kind == "fail":
                span.set_status(trace.Status(trace.StatusCode.ERROR, outcome.error))

        yield record
