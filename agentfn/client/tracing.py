"""Trace context for tasks, messages and workflows, with OpenTelemetry (optional:
``pip install 'agentfn[otel]'``).

Nothing here imports OpenTelemetry unless the application already did. When a span is current
while a task is submitted, a message sent or broadcast, or a workflow created, the client sends
that span's W3C trace context with the call (the library's TRACEPARENT option). The library
stores it with the task, the message or the workflow (which gives it to every step's task) and
hands it back with each claim and read, so that the agent runtime opens its spans as its
children (agentfn.agent.tracing). Without OpenTelemetry, or without a current span, nothing is
sent and nothing changes.
"""

from __future__ import annotations

import sys
from typing import Any


def trace_module() -> Any:
    """opentelemetry.trace when the application loaded it, else None (never imported here)."""
    return sys.modules.get("opentelemetry.trace")


def current_traceparent() -> str | None:
    """The current span's W3C traceparent (``00-<trace id>-<span id>-<flags>``), or None when
    OpenTelemetry is not loaded or no valid span is current."""
    trace = trace_module()
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def traceparent_option(explicit: str | None) -> str | None:
    """The TRACEPARENT option of a call: the caller's value, else the current span's."""
    return explicit if explicit is not None else current_traceparent()
