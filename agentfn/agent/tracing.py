"""Spans per attempt and per handled message, with OpenTelemetry (optional:
``pip install 'agentfn[otel]'``).

When the process has an OpenTelemetry SDK TracerProvider configured (``opentelemetry.trace``
loaded and set by the application; agentfn never imports it itself), the runtime runs each task
handler inside a span ``agentfn.attempt <capability>`` (attributes capability, task id, attempt,
agent, workflow, step and finally the outcome) and each message handler inside a span
``agentfn.message <type>`` (message id, type, sender, agent, outcome). Its parent is the trace
context the task or message carries (its ``traceparent``, sent by the submitter's or sender's
client: agentfn.client.tracing; a workflow step's task carries its workflow's), so one trace
shows a request going through every agent process it reaches; the span is current while the
handler runs, so the handler's own spans, and the tasks it submits and messages it sends, nest
under it. Otherwise the spans are nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..client.tracing import trace_module

if TYPE_CHECKING:
    from ..client.api.messages import Message
    from .types import TaskContext

#: Records how a handler ended: (outcome name, error text or "").
Record = Callable[[str, str], None]


def _configured(trace: Any) -> bool:
    return not isinstance(
        trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    )


def _parent(trace: Any, traceparent: str | None) -> Any:
    """The OpenTelemetry context whose remote span a W3C traceparent names (None: none)."""
    if not traceparent:
        return None
    _, trace_id, span_id, flags = traceparent.split("-")
    remote = trace.SpanContext(
        int(trace_id, 16),
        int(span_id, 16),
        is_remote=True,
        trace_flags=trace.TraceFlags(int(flags, 16)),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(remote))


def _ignore(outcome: str, error: str) -> None:
    return None


@contextlib.contextmanager
def _span(name: str, traceparent: str | None, attributes: Mapping[str, Any]) -> Iterator[Record]:
    """A consumer span, child of ``traceparent``, current inside (or nothing without a
    configured TracerProvider); yields a function to record how the handler ended."""
    trace = trace_module()
    if trace is None or not _configured(trace):
        yield _ignore
        return
    with trace.get_tracer("agentfn").start_as_current_span(
        name,
        context=_parent(trace, traceparent),
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:

        def record(outcome: str, error: str) -> None:
            span.set_attribute("agentfn.outcome", outcome)
            if error:
                span.set_status(trace.Status(trace.StatusCode.ERROR, error))

        yield record


def attempt_span(task_context: TaskContext) -> contextlib.AbstractContextManager[Record]:
    """A span around one attempt of a task handler (or nothing)."""
    task = task_context.task
    attributes = {
        "agentfn.capability": task.capability,
        "agentfn.task_id": task.id,
        "agentfn.attempt": task.attempt,
        "agentfn.agent": task_context.agent_id,
    }
    if task.workflow:
        attributes.update({"agentfn.workflow": task.workflow, "agentfn.step": task.step or ""})
    return _span(f"agentfn.attempt {task.capability}", task.traceparent, attributes)


def message_span(message: Message, agent_id: str) -> contextlib.AbstractContextManager[Record]:
    """A span around one message handler's call (or nothing)."""
    attributes = {
        "agentfn.message_id": message.id,
        "agentfn.message_type": message.type,
        "agentfn.from": message.sender,
        "agentfn.agent": agent_id,
    }
    return _span(f"agentfn.message {message.type}", message.traceparent, attributes)
