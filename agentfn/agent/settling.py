"""Ending attempts: the calls that settle finished tasks (completions of several in one
agentfn_task_complete_many), a pipeline of them in flight, and the log line of an attempt that
failed."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..client.api.base import json_text
from ..client.api.tasks import CompleteManyResult, FailResult
from ..client.batch import Batch
from ..constants import LIMITS
from .executors import Outcome, error_text
from .running import Running

log = logging.getLogger("agentfn.agent")

#: Traceback lines a failed attempt's WARNING carries; a longer one is cut (the whole at DEBUG).
TRACEBACK_LINES = 25


#: The outcomes that one call of a pipeline ends (several for an agentfn_task_complete_many).
Call = list[tuple[Running, Outcome]]


@dataclass
class Flight:
    """Outcomes sent in one pipeline whose replies are not read yet."""

    batch: Batch
    calls: list[Call]
    """The outcomes each call of the pipeline ends, in the order of the calls."""
    wanted: int
    """The NEXT count the last call carries."""

    @property
    def finished(self) -> Call:
        """Every outcome of the pipeline, in the order sent."""
        return [ended for call in self.calls for ended in call]


def item_results(call: Call, result: Any) -> list[Any]:
    """What each outcome of one call came to: a complete_many's item (an exception for one it
    refused), or the call's result (or the exception that refused it whole) for each."""
    if isinstance(result, CompleteManyResult):
        return [item.error or item for item in result.items]
    return [result] * len(call)


def group_completions(finished: Sequence[tuple[Running, Outcome]]) -> tuple[Call, list[Call]]:
    """Split finished outcomes into those sent one call each (failures, input requests, a
    workflow's tasks: complete_many takes one at most, results that are not JSON-serialisable or
    too large for one call) and groups of completions that one agentfn_task_complete_many each
    ends (at most complete_count items whose results total at most json_bytes; a group of one is
    sent as a plain complete)."""
    singles: Call = []
    groups: list[Call] = []
    group: Call = []
    size = 0
    for running, outcome in finished:
        try:
            length = len(json_text(outcome.result).encode()) if outcome.kind == "complete" else -1
        except (TypeError, ValueError):  # finish_call fails the attempt instead
            length = -1
        step = outcome.prompt is not None or running.task.workflow
        if step or not 0 <= length <= LIMITS["json_bytes"]:
            singles.append((running, outcome))
            continue
        if len(group) == LIMITS["complete_count"] or size + length > LIMITS["json_bytes"]:
            groups.append(group)
            group, size = [], 0
        group.append((running, outcome))
        size += length
    groups.append(group)
    singles += [ended for group in groups if len(group) == 1 for ended in group]
    return singles, [group for group in groups if len(group) > 1]


def send_outcomes(
    batch: Batch, finished: Sequence[tuple[Running, Outcome]], wanted: int, lease_ms: int | None
) -> list[Call]:
    """Queue the calls that end the finished attempts, completions of several in one
    complete_many, the last call carrying NEXT ``wanted``; returns the outcomes each call ends
    (as sent: finish_call may turn a completion into a failure)."""
    singles, groups = group_completions(finished)
    calls: list[Call] = []
    for index, (running, outcome) in enumerate(singles):
        next_count = wanted if index == len(singles) - 1 and not groups else 0
        calls.append([(running, finish_call(batch, running, outcome, next_count, lease_ms))])
    for index, group in enumerate(groups):
        batch.complete_many(
            [(running.task.id, running.task.token, outcome.result) for running, outcome in group],
            next=wanted if index == len(groups) - 1 else 0,
            lease_ms=lease_ms,
        )
        calls.append(group)
    return calls


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
