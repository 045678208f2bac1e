"""A span per attempt, with OpenTelemetry (optional: ``pip install 'agentfn[otel]'``).

When the process has an OpenTelemetry SDK TracerProvider configured (``opentelemetry.trace``
loaded and set by the application; agentfn never imports it itself), the runtime runs each
handler inside a span ``agentfn.attempt <capability>`` with the attributes capability, task id,
attempt, agent, workflow, step and finally the outcome. Its parent is the trace context that
the task's workflow carries (agentfn.client.tracing), so one trace shows an orchestrator's
workflow fanning out through every agent process; it is current while the handler runs, so the
handler's own spans nest under it. Otherwise :func:`attempt_span` does nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..client.tracing import TRACE_FIELD, trace_module
from ..errors import AgentfnError

if TYPE_CHECKING:
    from .types import TaskContext

#: Records how an attempt ended: (outcome name, error text or "").
Record = Callable[[str, str], None]


def _configured(trace: Any) -> bool:
    return not isinstance(
        trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    )


def _carrier(task_context: TaskContext) -> dict[str, str] | None:
    """The trace context the task's workflow carries, if any."""
    workflow = task_context.task.workflow
    if not workflow:
        return None
    try:
        carried = task_context.client.ctx_get(workflow).document.get(TRACE_FIELD)
    except AgentfnError:
        return None
    return carried if isinstance(carried, dict) else None


def _ignore(outcome: str, error: str) -> None:
    return None


@contextlib.contextmanager
def attempt_span(task_context: TaskContext) -> Iterator[Record]:
    """A span around one attempt of a handler (or nothing); yields a function to record how it ended."""
    trace = trace_module()
    if trace is None or not _configured(trace):
        yield _ignore
        return
    from opentelemetry.propagate import extract

    task = task_context.task
    carrier = _carrier(task_context)
    attributes = {
        "agentfn.capability": task.capability,
        "agentfn.task_id": task.id,
        "agentfn.attempt": task.attempt,
        "agentfn.agent": task_context.agent_id,
    }
    if task.workflow:
        attributes.update({"agentfn.workflow": task.workflow, "agentfn.step": task.step or ""})
    with trace.get_tracer("agentfn").start_as_current_span(
        f"agentfn.attempt {task.capability}",
        context=extract(carrier) if carrier else None,
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:

        def record(outcome: str, error: str) -> None:
            span.set_attribute("agentfn.outcome", outcome)
            if error:
                span.set_status(trace.Status(trace.StatusCode.ERROR, error))

        yield record
