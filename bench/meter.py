"""Meter: Redis-side counters over a span, read from the server's INFO (the benchmarks' one way
of measuring what a piece of work cost Redis, whoever the client is).

- round trips: ``total_reads_processed`` (reads of client input: one per round trip, however many
  commands it carried);
- commands: the sum of ``calls`` over INFO commandstats (commands a script or function runs count
  too, as in the issue's figures: an FCALL and each ``redis.call`` inside it);
- CPU: ``used_cpu_sys + used_cpu_user`` of the server process.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis


@dataclass(frozen=True)
class Span:
    """What a span cost Redis: round trips, commands and CPU seconds."""

    reads: int
    commands: int
    cpu: float

    def __add__(self, other: Span) -> Span:
        return Span(self.reads + other.reads, self.commands + other.commands, self.cpu + other.cpu)

    def per(self, count: int) -> dict[str, float]:
        """The figures per task: reads_per_task, commands_per_task, cpu_us_per_task."""
        return {
            "reads_per_task": self.reads / count,
            "commands_per_task": self.commands / count,
            "cpu_us_per_task": self.cpu / count * 1e6,
        }


def _sample(connection: redis.Redis) -> tuple[int, int, float]:
    info = connection.info("stats", "cpu", "commandstats")
    commands = sum(
        int(value["calls"])
        for name, value in info.items()
        if name.startswith("cmdstat_") and isinstance(value, dict)
    )
    cpu = float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    return int(info["total_reads_processed"]), commands, cpu


class Meter:
    """Counters from its creation to :meth:`stop`, less the meter's own INFO and the commands
    (and round trips) the harness says it sent meanwhile."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self.reads, self.commands, self.cpu = _sample(connection)

    def stop(self, own_commands: int = 0) -> Span:
        """The span since this meter started. ``own_commands``: commands the harness sent in
        between, one round trip each (polls, waits); the opening INFO is subtracted too (the
        closing one is counted neither as a read nor as a call yet when it samples)."""
        reads, commands, cpu = _sample(self.connection)
        return Span(
            reads - self.reads - 1 - own_commands,
            commands - self.commands - 1 - own_commands,
            cpu - self.cpu,
        )
