"""Rates over the last minute, from the event stream the live hub reads anyway.

The hub hands every new event entry to :meth:`Activity.add`; the overview asks for a
:meth:`Activity.summary`: tasks submitted, completed and failed in the window (in total and per
capability), and two sparklines in buckets: throughput (completions) and latency (submit to
completion). Event ids are the server's clock in ms, so the window is judged by that clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

#: The window the rates cover (ms), and the buckets of the sparklines.
WINDOW_MS = 60_000
BUCKETS = 20
BUCKET_MS = WINDOW_MS // BUCKETS

#: Submit times kept to compute latencies (oldest dropped first).
MAX_TRACKED_TASKS = 50_000


@dataclass
class Summary:
    """The last minute."""

    submitted: int = 0
    completed: int = 0
    failed: int = 0
    """Failed attempts (retried or not) and dead letters."""
    by_capability: dict[str, dict[str, int]] = field(default_factory=dict)
    """capability -> {"submitted": n, "completed": n}."""
    throughput: list[int] = field(default_factory=list)
    """Completions per bucket, oldest first."""
    latency_ms: list[float | None] = field(default_factory=list)
    """Mean submit-to-completion time of the completions of each bucket (None: none known)."""

    @property
    def latest_latency_ms(self) -> float | None:
        return next((value for value in reversed(self.latency_ms) if value is not None), None)


class Activity:
    """A sliding window over the namespace's task events."""

    def __init__(self) -> None:
        self._window: deque[tuple[int, str, str, float | None]] = deque()
        """(ms, kind, capability, latency) of each submitted/completed/failed event in the window."""
        self._tasks: dict[str, tuple[int, str]] = {}
        """task id -> (submitted ms, capability), insertion-ordered."""

    def add(self, entries: Iterable[tuple[str, dict[str, str]]]) -> None:
        """Take new event stream entries (id, fields), oldest first."""
        for entry_id, fields in entries:
            kind, task_id = fields.get("type", ""), fields.get("task", "")
            if not kind.startswith("task.") or not task_id:
                continue
            ms = int(entry_id.split("-")[0])
            if kind == "task.submitted":
                capability = fields.get("capability", "")
                self._tasks[task_id] = (ms, capability)
                if len(self._tasks) > MAX_TRACKED_TASKS:
                    del self._tasks[next(iter(self._tasks))]
                self._window.append((ms, "submitted", capability, None))
            elif kind == "task.completed":
                submitted_ms, capability = self._tasks.pop(task_id, (None, ""))
                self._window.append(
                    (
                        ms,
                        "completed",
                        capability,
                        None if submitted_ms is None else float(ms - submitted_ms),
                    )
                )
            elif kind in ("task.failed", "task.dead"):
                self._window.append((ms, "failed", self._tasks.get(task_id, (0, ""))[1], None))

    def summary(self, now_ms: int) -> Summary:
        """The window ending at ``now_ms`` (older entries are dropped for good)."""
        start = now_ms - WINDOW_MS
        while self._window and self._window[0][0] <= start:
            self._window.popleft()
        summary = Summary(throughput=[0] * BUCKETS)
        latency_sums = [0.0] * BUCKETS
        latency_counts = [0] * BUCKETS
        for ms, kind, capability, latency in self._window:
            setattr(summary, kind, getattr(summary, kind) + 1)
            if capability and kind != "failed":
                counts = summary.by_capability.setdefault(
                    capability, {"submitted": 0, "completed": 0}
                )
                counts[kind] += 1
            if kind == "completed":
                bucket = min(max((ms - start - 1) // BUCKET_MS, 0), BUCKETS - 1)
                summary.throughput[bucket] += 1
                if latency is not None:
                    latency_sums[bucket] += latency
                    latency_counts[bucket] += 1
        summary.latency_ms = [
            total / count if count else None
            for total, count in zip(latency_sums, latency_counts, strict=True)
        ]
        return summary


def sparkline(values: list[int] | list[float | None], width: int = 160, height: int = 28) -> str:
    """SVG polyline points for values (None as 0), scaled to the box; empty when all are zero."""
    numbers = [value or 0.0 for value in values]
    top = max(numbers, default=0)
    if not numbers or top <= 0:
        return ""
    step = width / max(len(numbers) - 1, 1)
    return " ".join(
        f"{index * step:.1f},{height - 2 - (value / top) * (height - 4):.1f}"
        for index, value in enumerate(numbers)
    )
