"""Plain-text formats of what the library stores: server times, durations, JSON values.

Shared by the operator commands (agentfn.cli.views) and the web dashboard (agentfn.dashboard).
"""

from __future__ import annotations

import datetime
import json
from typing import Any


def duration(ms: int | float | None) -> str:
    """850 ms, 2.1 s, 3 m 05 s, 2 h 10 m."""
    if ms is None:
        return "-"
    ms = int(ms)
    if abs(ms) < 1_000:
        return f"{ms} ms"
    if abs(ms) < 60_000:
        return f"{ms / 1000:.1f} s"
    if abs(ms) < 3_600_000:
        return f"{ms // 60_000} m {ms % 60_000 // 1000:02d} s"
    return f"{ms // 3_600_000} h {ms % 3_600_000 // 60_000:02d} m"


def clock(ms: int | str | None) -> str:
    """A server timestamp (ms) as local wall-clock time with milliseconds."""
    if ms in (None, ""):
        return "-"
    moment = datetime.datetime.fromtimestamp(int(ms) / 1000)
    return moment.strftime("%H:%M:%S.") + f"{int(ms) % 1000:03d}"


def compact_json(value: Any, limit: int = 80) -> str:
    """A JSON value on one line, cut to ``limit`` characters."""
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"
