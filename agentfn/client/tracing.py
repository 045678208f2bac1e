"""Trace context for workflows, with OpenTelemetry (optional: ``pip install 'agentfn[otel]'``).

Nothing here imports OpenTelemetry unless the application already did. When a span is current
while a workflow is created, its W3C trace context (``traceparent``, and ``tracestate`` when
set) goes into the workflow's shared context document under ``_trace``, written atomically with
the workflow, so that the agents running its steps open their spans as its children (see
agentfn.agent.tracing). Without OpenTelemetry, or without a current span, nothing changes.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

#: The key of a workflow's shared context that carries its trace context.
TRACE_FIELD = "_trace"


def trace_module() -> Any:
    """opentelemetry.trace when the application loaded it, else None (never imported here)."""
    return sys.modules.get("opentelemetry.trace")


def with_trace_context(context: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A workflow's initial shared context plus the current span's trace context (unchanged
    when no span is current)."""
    trace = trace_module()
    if trace is None or not trace.get_current_span().get_span_context().is_valid:
        return context
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return {**(context or {}), TRACE_FIELD: carrier} if carrier else context
