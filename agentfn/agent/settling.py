"""Ending attempts: the call that settles a finished task, a pipeline of them in flight, and the
log line of an attempt that failed."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..client.api.tasks import FailResult
from ..client.batch import Batch
from .executors import Outcome, error_text
from .running import Running

log = logging.getLogger("agentfn.agent")

#: Traceback lines a failed attempt's WARNING carries; a longer one is cut (the whole at DEBUG).
TRACEBACK_LINES = 25


@dataclass
class Flight:
    """Outcomes sent in one pipeline whose replies are not read yet."""

    batch: Batch
    finished: list[tuple[Running, Outcome]]
    wanted: int
    """The NEXT count the last call carries."""


def finish_call(
    batch: Batch, running: Running, outcome: Outcome, next_count: int, lease_ms: int | None
) -> Outcome:
    """Queue the call that ends an attempt with its outcome; the tasks its NEXT claims get the
    lease ``lease_ms`` (None: each task's timeout), as a claim's do. Returns the outcome sent:
    a result that is not JSON-serialisable fails the attempt instead."""
    task = running.task
    if outcome.kind == "complete":
        try:
            batch.complete(
                task.id,
                task.token,
                outcome.result,
                next=next_count,
                input_required=outcome.prompt,
                lease_ms=lease_ms,
            )
            return outcome
        except (TypeError, ValueError) as error:  # not JSON-serialisable: nothing was queued
            outcome = Outcome("fail", error=f"{error_text(error)} (the handler's result)")
    batch.fail(
        task.id, task.token, outcome.error, retry=outcome.retry, next=next_count, lease_ms=lease_ms
    )
    return outcome


def what_next(result: FailResult, until_ms: float) -> str:
    """What a failed attempt led to, in words (``until_ms``: ms until the retry is due)."""
    if result.state == "delayed":
        return f"retry in {until_ms:.0f} ms"
    if result.state == "queued":
        return "retry now"
    if result.state == "dead":
        return "dead-lettered (out of attempts): agentfn dead-letters list"
    if result.state == "failed":
        return "failed for good (no retry)"
    return result.state


def log_failed_attempt(
    agent_id: str, running: Running, outcome: Outcome, result: FailResult, until_ms: float
) -> None:
    """One WARNING per failed attempt: task, capability, attempt/max, what happens next, and the
    handler's traceback (cut to its last TRACEBACK_LINES lines; the whole one at DEBUG)."""
    task = running.task
    attempts = f"{result.attempt or task.attempt}/{result.max_attempts or '?'}"
    lines = outcome.traceback.rstrip("\n").splitlines()
    shown = lines[-TRACEBACK_LINES:]
    if len(lines) > len(shown):
        shown.insert(0, f"... ({len(lines) - len(shown)} lines cut; the whole traceback at DEBUG)")
        log.debug(
            "agent %s: task %s: the whole traceback:\n%s", agent_id, task.id, outcome.traceback
        )
    log.warning(
        "agent %s: task %s (%s) attempt %s failed: %s; %s%s",
        agent_id,
        task.id,
        task.capability,
        attempts,
        outcome.error,
        what_next(result, until_ms),
        "".join(f"\n{line}" for line in shown),
    )
