"""Ending attempts: the call that settles a finished task, and a pipeline of them in flight."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..client.batch import Batch
from .executors import Outcome, error_text
from .running import Running


@dataclass
class Flight:
    """Outcomes sent in one pipeline whose replies are not read yet."""

    batch: Batch
    finished: list[tuple[Running, Outcome]]
    wanted: int
    """The NEXT count the last call carries."""


def finish_call(
    api: Any, running: Running, outcome: Outcome, next_count: int, lease_ms: int | None
) -> Any:
    """Make (Client) or queue (Batch) the call that ends an attempt with its outcome; the tasks
    its NEXT claims get the lease ``lease_ms`` (None: each task's timeout), as a claim's do."""
    task = running.task
    if outcome.kind == "complete":
        try:
            return api.complete(
                task.id,
                task.token,
                outcome.result,
                next=next_count,
                input_required=outcome.prompt,
                lease_ms=lease_ms,
            )
        except (
            TypeError,
            ValueError,
        ) as error:  # not JSON-serialisable: fails before anything is sent
            outcome = Outcome("fail", error=error_text(error))
    return api.fail(
        task.id, task.token, outcome.error, retry=outcome.retry, next=next_count, lease_ms=lease_ms
    )
