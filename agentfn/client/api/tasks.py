"""Task routing: agentfn_task_submit, _submit_many, _claim, _complete, _complete_many, _fail,
_extend, _cancel, _get, _requeue, agentfn_reap.

Payloads, results, prompts and inputs travel as JSON text; these methods encode what they send
with :func:`json.dumps` (so a plain string is sent as a JSON string) and decode what they get.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...constants import Priority
from ...errors import LibraryError, library_error
from ...replies import as_int, as_json, as_optional_int, as_optional_text, as_stored_json, pairs
from ..tracing import traceparent_option
from .base import ApiBase, json_text, one_field


def _undecodable(fields: dict[str, Any]) -> tuple[Any, Any, str]:
    """A claimed task's payload and inputs, None for each that is not valid JSON, and why."""
    decoded: dict[str, Any] = {}
    problems = []
    for name in ("payload", "inputs"):
        try:
            decoded[name] = as_json(fields[name])
        except ValueError as error:
            decoded[name] = None
            problems.append(f"its {name} is not valid JSON ({error})")
    return decoded["payload"], decoded["inputs"], "; ".join(problems)


@dataclass(frozen=True)
class ClaimedTask:
    """One task a claim started: run it, then complete or fail it with its token."""

    id: str
    capability: str
    payload: Any
    """The submitted payload, decoded from JSON."""
    attempt: int
    token: str
    """The claim token, ``<attempt>-<40 hex>``, that complete, fail and extend must present: only
    the claimer can know it (it derives from the agent's secret; the library keeps its SHA-1)."""
    lease_deadline_ms: int
    """When the lease ends on the server clock, unless extended."""
    priority: str
    workflow: str | None
    step: str | None
    inputs: Any
    """For a workflow step: the results of its dependencies, decoded (None otherwise)."""
    timeout_ms: int
    """The task's lease time; extend renews the lease by this much by default."""
    traceparent: str | None = None
    """The W3C trace context it was submitted with (a step: its workflow's), or None."""
    problem: str | None = None
    """Why the task cannot be run as stored (its payload or inputs are not valid JSON: data
    written before the library checked JSON strictly, or by a raw HSET); payload and inputs
    are then None. The claim still succeeds, so that the caller can fail the attempt."""

    @classmethod
    def from_reply(cls, reply: Any) -> ClaimedTask:
        fields = pairs(reply)
        problem = None
        try:
            payload, inputs = as_json(fields["payload"]), as_json(fields["inputs"])
        except ValueError:  # rare: find which, and still return the task
            payload, inputs, problem = _undecodable(fields)
        return cls(
            id=fields["id"],
            capability=fields["capability"],
            payload=payload,
            attempt=as_int(fields["attempt"]),
            token=fields["token"],
            lease_deadline_ms=as_int(fields["lease_deadline_ms"]),
            priority=fields["priority"],
            workflow=as_optional_text(fields["workflow"]),
            step=as_optional_text(fields["step"]),
            inputs=inputs,
            timeout_ms=as_int(fields["timeout_ms"]),
            traceparent=fields.get("traceparent") or None,  # absent from a 0.x library's reply
            problem=problem,
        )


@dataclass(frozen=True)
class ClaimResult:
    """What a claim returned: tasks and, when fewer than asked, what to block on for the rest."""

    tasks: list[ClaimedTask]
    wait_streams: dict[str, str]
    """Stream key -> newest id, for XREAD BLOCK when the claim returned fewer tasks than asked
    (every stream was drained); empty when it returned as many as asked."""
    next_due_ms: int | None
    """With ``wait_streams``: the earliest due time of a delayed task (server clock), or None."""

    @classmethod
    def from_reply(cls, reply: Any) -> ClaimResult:
        fields = pairs(reply)
        return cls(
            tasks=[ClaimedTask.from_reply(task) for task in fields["tasks"]],
            wait_streams=pairs(fields["wait"]),
            next_due_ms=as_optional_int(fields["next_due_ms"]),
        )


def _next_claim(fields: dict[str, Any]) -> ClaimResult | None:
    return ClaimResult.from_reply(fields["next"]) if "next" in fields else None


@dataclass(frozen=True)
class CompleteResult:
    """What agentfn_task_complete returned."""

    id: str
    state: str
    """completed, or canceled when the task was canceled while running (the result was discarded)."""
    next: ClaimResult | None
    """The agent's next claim when ``next`` > 0 was asked for."""

    @classmethod
    def from_reply(cls, reply: Any) -> CompleteResult:
        fields = pairs(reply)
        return cls(id=fields["id"], state=fields["state"], next=_next_claim(fields))


@dataclass(frozen=True)
class CompletedItem:
    """One item of what agentfn_task_complete_many returned."""

    id: str
    state: str
    """completed, canceled (canceled while running: the result was discarded), or refused."""
    error: LibraryError | None = None
    """For a refused item, why (NotFound, StaleToken or Denied): nothing changed for it."""


@dataclass(frozen=True)
class CompleteManyResult:
    """What agentfn_task_complete_many returned: one item per attempt, in the order given."""

    items: list[CompletedItem]
    next: ClaimResult | None
    """The holder's next claim when ``next`` > 0 was asked for and an item was accepted."""

    @classmethod
    def from_reply(cls, reply: Any) -> CompleteManyResult:
        fields = pairs(reply)
        flat = fields["results"]
        items = [
            CompletedItem(flat[i], flat[i + 1], _refusal(flat[i + 2]) if flat[i + 2] else None)
            for i in range(0, len(flat), 3)
        ]
        return cls(items=items, next=_next_claim(fields))


def _refusal(text: str) -> LibraryError:
    """An item's refusal (``<CODE> <message>``) as the exception a call refused so would raise."""
    return library_error(text) or LibraryError(text)


@dataclass(frozen=True)
class FailResult:
    """What agentfn_task_fail returned."""

    id: str
    state: str
    """delayed, queued, failed, dead, or canceled."""
    due_ms: int | None
    """When the task is ready again (delayed or queued); None when it finished."""
    next: ClaimResult | None
    attempt: int | None = None
    """The attempt that failed (None from a library before 2.0)."""
    max_attempts: int | None = None
    """The task's attempts in all (None from a library before 2.0)."""

    @classmethod
    def from_reply(cls, reply: Any) -> FailResult:
        fields = pairs(reply)
        return cls(
            id=fields["id"],
            state=fields["state"],
            due_ms=as_optional_int(fields["due_ms"]),
            next=_next_claim(fields),
            attempt=as_optional_int(fields.get("attempt", "")),
            max_attempts=as_optional_int(fields.get("max_attempts", "")),
        )


@dataclass(frozen=True)
class ExtendResult:
    """What agentfn_task_extend returned."""

    id: str
    lease_deadline_ms: int | None
    canceled: bool
    """True when the task was canceled: stop working on it."""

    @classmethod
    def from_reply(cls, reply: Any) -> ExtendResult:
        fields = pairs(reply)
        return cls(
            id=fields["id"],
            lease_deadline_ms=as_optional_int(fields["lease_deadline_ms"]),
            canceled=as_int(fields["canceled"]) == 1,
        )


@dataclass(frozen=True)
class TaskInfo:
    """A task's record (agentfn_task_get); JSON fields decoded, unset fields None."""

    id: str
    capability: str
    payload: Any
    priority: str
    state: str
    """A TaskState value."""
    attempt: int
    max_attempts: int
    backoff_ms: int
    backoff_max_ms: int
    timeout_ms: int
    created_ms: int
    due_ms: int | None
    started_ms: int | None
    finished_ms: int | None
    agent: str | None
    """The current or last claimer."""
    stream: str
    entry: str | None
    """The stream entry while queued or running; the dead-letter entry while dead."""
    lease_deadline_ms: int | None
    result: Any
    error: str | None
    """The last error."""
    errors: list[dict[str, Any]]
    """Every failed attempt: {attempt, error, agent, at_ms}."""
    to: str | None
    idempotency_key: str | None
    workflow: str | None
    step: str | None
    inputs: Any
    prompt: Any
    retention_ms: int
    cancel_requested: bool
    traceparent: str | None
    """The W3C trace context it was submitted with (a step: its workflow's)."""
    grace_ms: int | None = None
    """A direct task's grace once its agent is gone (GRACE_MS); None: the default."""

    @classmethod
    def from_reply(cls, reply: Any) -> TaskInfo:
        fields = pairs(reply)
        text = {
            name: as_optional_text(fields[name])
            for name in (
                "agent",
                "entry",
                "error",
                "to",
                "idempotency_key",
                "workflow",
                "step",
                "traceparent",
            )
        }
        return cls(
            id=fields["id"],
            capability=fields["capability"],
            payload=as_stored_json(fields["payload"]),
            priority=fields["priority"],
            state=fields["state"],
            attempt=as_int(fields["attempt"]),
            max_attempts=as_int(fields["max_attempts"]),
            backoff_ms=as_int(fields["backoff_ms"]),
            backoff_max_ms=as_int(fields["backoff_max_ms"]),
            timeout_ms=as_int(fields["timeout_ms"]),
            created_ms=as_int(fields["created_ms"]),
            due_ms=as_optional_int(fields["due_ms"]),
            started_ms=as_optional_int(fields["started_ms"]),
            finished_ms=as_optional_int(fields["finished_ms"]),
            stream=fields["stream"],
            lease_deadline_ms=as_optional_int(fields["lease_deadline_ms"]),
            result=as_stored_json(fields["result"]),
            errors=as_stored_json(fields["errors"], []),
            inputs=as_stored_json(fields["inputs"]),
            prompt=as_stored_json(fields["prompt"]),
            retention_ms=as_int(fields["retention_ms"]),
            cancel_requested=fields["cancel_requested"] == "1",
            grace_ms=as_optional_int(fields.get("grace_ms", "")),
            **text,
        )


def _counters(reply: Any) -> dict[str, int]:
    return {name: as_int(value) for name, value in pairs(reply).items()}


class TasksApi(ApiBase):
    """Task routing methods."""

    def submit(
        self,
        capability: str,
        payload: Any,
        *,
        priority: Priority | str | None = None,
        delay_ms: int | None = None,
        max_attempts: int | None = None,
        backoff_ms: int | None = None,
        backoff_max_ms: int | None = None,
        timeout_ms: int | None = None,
        idempotency_key: str | None = None,
        to: str | None = None,
        grace_ms: int | None = None,
        retention_ms: int | None = None,
        traceparent: str | None = None,
    ) -> str:
        """agentfn_task_submit: queue a task (payload: any JSON-serialisable value); returns its id.

        With an idempotency key that names a retained task, returns that task's id instead.
        ``grace_ms`` (with ``to``): how long the task waits for its agent once the agent is gone
        before it is dead-lettered with error ``agent gone``.
        ``traceparent``: the W3C trace context its attempts' spans are children of; by default
        the current OpenTelemetry span's, when there is one (agentfn.client.tracing).
        """
        return self._call(
            "agentfn_task_submit",
            [capability, json_text(payload)],
            {
                "PRIORITY": priority,
                "DELAY_MS": delay_ms,
                "MAX_ATTEMPTS": max_attempts,
                "BACKOFF_MS": backoff_ms,
                "BACKOFF_MAX_MS": backoff_max_ms,
                "TIMEOUT_MS": timeout_ms,
                "IDEMPOTENCY_KEY": idempotency_key,
                "TO": to,
                "GRACE_MS": grace_ms,
                "RETENTION_MS": retention_ms,
                "TRACEPARENT": traceparent_option(traceparent),
            },
            one_field("id"),
        )

    def submit_many(
        self,
        items: Sequence[tuple[str, Any]],
        *,
        priority: Priority | str | None = None,
        delay_ms: int | None = None,
        max_attempts: int | None = None,
        backoff_ms: int | None = None,
        backoff_max_ms: int | None = None,
        timeout_ms: int | None = None,
        to: str | None = None,
        grace_ms: int | None = None,
        retention_ms: int | None = None,
        traceparent: str | None = None,
    ) -> list[str]:
        """agentfn_task_submit_many: queue many tasks in one call, each item a (capability,
        payload); returns their ids in the order given. The options are :meth:`submit`'s and
        apply to every task (an idempotency key names one task: use :meth:`submit`). At most
        ``LIMITS["submit_count"]`` items whose payloads total at most ``LIMITS["json_bytes"]``;
        a malformed item refuses the whole call and nothing is created."""
        positional: list[Any] = [len(items)]
        for capability, payload in items:
            positional += [capability, json_text(payload)]
        return self._call(
            "agentfn_task_submit_many",
            positional,
            {
                "PRIORITY": priority,
                "DELAY_MS": delay_ms,
                "MAX_ATTEMPTS": max_attempts,
                "BACKOFF_MS": backoff_ms,
                "BACKOFF_MAX_MS": backoff_max_ms,
                "TIMEOUT_MS": timeout_ms,
                "TO": to,
                "GRACE_MS": grace_ms,
                "RETENTION_MS": retention_ms,
                "TRACEPARENT": traceparent_option(traceparent),
            },
            list,
        )

    def claim(
        self,
        agent_id: str,
        count: int = 1,
        *,
        lease_ms: int | None = None,
        secret: str | None = None,
    ) -> ClaimResult:
        """agentfn_task_claim: claim up to ``count`` tasks for a live agent (never blocks);
        ``secret``: by default the one this client registered the agent with."""
        return self._call(
            "agentfn_task_claim",
            [agent_id, self._agent_secret(agent_id, secret)],
            {"COUNT": count, "LEASE_MS": lease_ms},
            ClaimResult.from_reply,
        )

    def complete(
        self,
        task_id: str,
        token: str,
        result: Any,
        *,
        next: int = 0,
        input_required: Any = None,
        lease_ms: int | None = None,
    ) -> CompleteResult:
        """agentfn_task_complete: finish the attempt with ``result``; ``next`` > 0 claims again,
        each task claimed with a lease of ``lease_ms`` (as claim's; unused without ``next``).

        ``input_required`` (a workflow task only): a JSON-serialisable prompt; the attempt ends
        without a result and the workflow step waits for input.
        """
        prompt = None if input_required is None else json_text(input_required)
        return self._call(
            "agentfn_task_complete",
            [task_id, token, json_text(result)],
            {
                "NEXT": next or None,
                "INPUT_REQUIRED": prompt,
                "LEASE_MS": lease_ms if next else None,
            },
            CompleteResult.from_reply,
        )

    def complete_many(
        self,
        items: Sequence[tuple[str, str, Any]],
        *,
        next: int = 0,
        lease_ms: int | None = None,
    ) -> CompleteManyResult:
        """agentfn_task_complete_many: finish many attempts in one call, each item a (task_id,
        token, result). An item refused by its task's state (NOTFOUND, STALE, DENIED) is reported
        in its place and the others complete; a malformed item refuses the whole call.
        ``next`` > 0 claims again for the agent holding the items, as complete's ``next``."""
        positional: list[Any] = [len(items)]
        for task_id, token, result in items:
            positional += [task_id, token, json_text(result)]
        return self._call(
            "agentfn_task_complete_many",
            positional,
            {"NEXT": next or None, "LEASE_MS": lease_ms if next else None},
            CompleteManyResult.from_reply,
        )

    def fail(
        self,
        task_id: str,
        token: str,
        error: str,
        *,
        retry: bool = True,
        next: int = 0,
        lease_ms: int | None = None,
    ) -> FailResult:
        """agentfn_task_fail: end the attempt with an error; retried with backoff unless ``retry`` is False.
        ``next`` and ``lease_ms`` as for complete."""
        return self._call(
            "agentfn_task_fail",
            [task_id, token, error],
            {
                "RETRY": None if retry else False,
                "NEXT": next or None,
                "LEASE_MS": lease_ms if next else None,
            },
            FailResult.from_reply,
        )

    def extend(self, task_id: str, token: str, lease_ms: int | None = None) -> ExtendResult:
        """agentfn_task_extend: renew the lease; ``canceled`` tells the worker to stop."""
        return self._call(
            "agentfn_task_extend", [task_id, token], {"LEASE_MS": lease_ms}, ExtendResult.from_reply
        )

    def cancel(self, task_id: str) -> str:
        """agentfn_task_cancel: cancel an unfinished task; returns the state it was in."""
        return self._call("agentfn_task_cancel", [task_id], None, one_field("was"))

    def get_task(self, task_id: str) -> TaskInfo:
        """agentfn_task_get: a task's record."""
        return self._call("agentfn_task_get", [task_id], None, TaskInfo.from_reply)

    def requeue(self, task_id: str, max_attempts: int | None = None) -> str:
        """agentfn_task_requeue: queue a dead or failed task again with a fresh budget; returns its state."""
        return self._call(
            "agentfn_task_requeue", [task_id], {"MAX_ATTEMPTS": max_attempts}, one_field("state")
        )

    def reap(self, limit: int | None = None) -> dict[str, int]:
        """agentfn_reap: promote due tasks, expire leases, sweep lapsed agents; returns the counters."""
        return self._call("agentfn_reap", [], {"LIMIT": limit}, _counters)
