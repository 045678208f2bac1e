"""Workflows: agentfn_wf_create, _get, _cancel, _signal, agentfn_ctx_get, _set, and waiting.

A workflow is a graph of steps, each a task for a capability; the library enqueues a step once
every step it depends on has completed, in the same call that completes the last of them. A
dependent's task carries ``inputs``: ``{"<dependency step id>": <its result>, ...}`` (plus
``"_signal": <value>`` when the step runs again after asking for input); its ``payload`` is the
step's own ``input``.

``wait_workflow`` never polls: it subscribes to the workflow's channel first, then reads the
state, then blocks on the channel, so a change between the read and the block still wakes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ... import keys
from ...constants import StepState, WorkflowPolicy, WorkflowState
from ...replies import as_int, as_optional_int, as_stored_json, as_text, pairs
from ..tracing import traceparent_option
from .base import ApiBase, json_text, one_field
from .steps import Step, is_async, run_async, run_sync

#: Channel messages after which a waiter reads the workflow again.
_FINAL_MESSAGES = frozenset(
    f"workflow.{state.value}" for state in WorkflowState if state != WorkflowState.RUNNING
)
_INPUT_MESSAGE = "step.input-required"

#: Longest single block on the channel when the caller gives no timeout (the wait then goes on).
_BLOCK_CHUNK_S = 3600.0


@dataclass(frozen=True)
class WorkflowStep:
    """One step of a definition (a plain dict with the same keys works too)."""

    id: str
    capability: str
    input: Any = None
    """The task's payload: any JSON value."""
    depends_on: Sequence[str] = ()
    max_attempts: int | None = None
    backoff_ms: int | None = None
    timeout_ms: int | None = None
    priority: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The step as the definition JSON spells it (unset options left out)."""
        step: dict[str, Any] = {"id": self.id, "capability": self.capability, "input": self.input}
        if self.depends_on:
            step["depends_on"] = list(self.depends_on)
        for name in ("max_attempts", "backoff_ms", "timeout_ms", "priority"):
            if getattr(self, name) is not None:
                step[name] = getattr(self, name)
        return step


@dataclass(frozen=True)
class StepInfo:
    """One step of a workflow as agentfn_wf_get reports it."""

    id: str
    capability: str
    state: StepState
    depends_on: tuple[str, ...]
    input: Any
    attempts: int
    """Attempts over every task the step ran (it runs again after a signal)."""
    task: str | None
    """The current (or last) task's id; None while the step waits for its dependencies."""
    task_state: str | None
    result: Any
    """The result (decoded JSON) once completed, else None."""
    error: str | None
    prompt: Any
    """What the handler asked for when it answered input required (decoded JSON)."""
    signal: Any
    """The last value given with agentfn_wf_signal (decoded JSON)."""
    queued_ms: int | None
    started_ms: int | None
    finished_ms: int | None

    @classmethod
    def from_reply(cls, reply: Any) -> StepInfo:
        fields = pairs(reply)
        return cls(
            id=fields["id"],
            capability=fields["capability"],
            state=StepState(fields["state"]),
            depends_on=tuple(item for item in fields["depends_on"].split(",") if item),
            input=as_stored_json(fields["input"]),
            attempts=as_int(fields["attempts"]),
            task=fields["task"] or None,
            task_state=fields["task_state"] or None,
            result=as_stored_json(fields["result"]),
            error=fields["error"] or None,
            prompt=as_stored_json(fields["prompt"]),
            signal=as_stored_json(fields["signal"]),
            queued_ms=as_optional_int(fields["queued_ms"]),
            started_ms=as_optional_int(fields["started_ms"]),
            finished_ms=as_optional_int(fields["finished_ms"]),
        )


@dataclass(frozen=True)
class WorkflowInfo:
    """A workflow's state (and its steps, unless read with ``steps=False``)."""

    id: str
    state: WorkflowState
    policy: WorkflowPolicy
    created_ms: int
    finished_ms: int | None
    error: str | None
    """Why the workflow failed or was canceled (the first step failure)."""
    step_count: int
    remaining: int
    """Steps that have not reached a final state."""
    completed: int
    failed: int
    skipped: int
    canceled: int
    input_required: int
    """Steps waiting for agentfn_wf_signal."""
    context_version: int
    retention_ms: int
    traceparent: str | None = None
    """The W3C trace context it was created with (every step's task carries it)."""
    steps: tuple[StepInfo, ...] = field(default=())

    @classmethod
    def from_reply(cls, reply: Any) -> WorkflowInfo:
        fields = pairs(reply)
        return cls(
            id=fields["id"],
            state=WorkflowState(fields["state"]),
            policy=WorkflowPolicy(fields["policy"]),
            created_ms=as_int(fields["created_ms"]),
            finished_ms=as_optional_int(fields["finished_ms"]),
            error=fields["error"] or None,
            step_count=as_int(fields["step_count"]),
            remaining=as_int(fields["remaining"]),
            completed=as_int(fields["completed"]),
            failed=as_int(fields["failed"]),
            skipped=as_int(fields["skipped"]),
            canceled=as_int(fields["canceled"]),
            input_required=as_int(fields["input_required"]),
            context_version=as_int(fields["context_version"]),
            retention_ms=as_int(fields["retention_ms"]),
            traceparent=fields["traceparent"] or None,
            steps=tuple(StepInfo.from_reply(step) for step in fields.get("steps", ())),
        )

    @property
    def done(self) -> bool:
        """True once the workflow completed, failed or was canceled."""
        return self.state != WorkflowState.RUNNING

    def step(self, step_id: str) -> StepInfo:
        """The step with this id (KeyError when there is none, or steps were not read)."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @property
    def results(self) -> dict[str, Any]:
        """Step id -> result of every completed step, in definition order."""
        return {step.id: step.result for step in self.steps if step.state == StepState.COMPLETED}


@dataclass(frozen=True)
class WorkflowContext:
    """A workflow's shared context document and its version (the number of writes)."""

    document: dict[str, Any]
    version: int

    @classmethod
    def from_reply(cls, reply: Any) -> WorkflowContext:
        fields = pairs(reply)
        return cls(document=json.loads(fields["document"]), version=as_int(fields["version"]))


def build_definition(
    steps: Sequence[WorkflowStep | Mapping[str, Any]],
    *,
    policy: WorkflowPolicy | str | None = None,
    workflow_id: str | None = None,
    chain: bool = False,
) -> dict[str, Any]:
    """The definition JSON object agentfn_wf_create takes, from steps (WorkflowStep or dicts)."""
    definition: dict[str, Any] = {
        "steps": [
            step.to_json() if isinstance(step, WorkflowStep) else dict(step) for step in steps
        ]
    }
    if policy is not None:
        definition["policy"] = WorkflowPolicy(policy).value
    if workflow_id is not None:
        definition["id"] = workflow_id
    if chain:
        definition["chain"] = True
    return definition


def _remaining_s(deadline: float | None) -> float | None:
    """Seconds to block on the channel: a chunk when there is no deadline, None when it passed."""
    if deadline is None:
        return _BLOCK_CHUNK_S
    remaining = deadline - time.monotonic()
    return remaining if remaining > 0 else None


def _wait_steps(
    api: WorkflowsApi, pubsub: Any, workflow_id: str, timeout: float | None, until_input: bool
) -> Generator[Step, Any, WorkflowInfo]:
    """Subscribe, read, block on messages; written once for Client and AsyncClient (see messages)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    wake = _FINAL_MESSAGES | ({_INPUT_MESSAGE} if until_input else set())

    def expired() -> TimeoutError:
        return TimeoutError(f"workflow {workflow_id} did not finish within {timeout} s")

    yield lambda: pubsub.subscribe(keys.notify_channel(api.namespace, f"wf:{workflow_id}"))
    # The server confirms the subscription before anything is read: from then on no change is missed.
    while True:
        block = _remaining_s(deadline)
        if block is None:
            raise expired()
        message = yield lambda: pubsub.get_message(timeout=block)
        if message is not None and as_text(message["type"]) == "subscribe":
            break
    summary: WorkflowInfo = yield lambda: api.get_workflow(workflow_id, steps=False)
    while not (summary.done or (until_input and summary.input_required > 0)):
        block = _remaining_s(deadline)
        if block is None:
            raise expired()
        message = yield lambda: pubsub.get_message(timeout=block)
        if (
            message is not None
            and as_text(message["type"]) == "message"
            and as_text(message["data"]).split(" ", 1)[0] in wake
        ):
            summary = yield lambda: api.get_workflow(workflow_id, steps=False)
    info: WorkflowInfo = yield lambda: api.get_workflow(workflow_id)
    return info


def _wait_sync(
    api: WorkflowsApi, workflow_id: str, timeout: float | None, until_input: bool
) -> WorkflowInfo:
    pubsub = api.redis.pubsub()
    try:
        return run_sync(_wait_steps(api, pubsub, workflow_id, timeout, until_input))
    finally:
        pubsub.close()


async def _wait_async(
    api: WorkflowsApi, workflow_id: str, timeout: float | None, until_input: bool
) -> WorkflowInfo:
    pubsub = api.redis.pubsub()
    try:
        return await run_async(_wait_steps(api, pubsub, workflow_id, timeout, until_input))
    finally:
        await pubsub.aclose()


class WorkflowsApi(ApiBase):
    """Workflow and shared-context methods (Client: values; AsyncClient: awaitables)."""

    redis: Any
    namespace: str

    def create_workflow(
        self,
        steps: Sequence[WorkflowStep | Mapping[str, Any]],
        *,
        policy: WorkflowPolicy | str = WorkflowPolicy.FAIL_FAST,
        workflow_id: str | None = None,
        chain: bool = False,
        context: Mapping[str, Any] | None = None,
        retention_ms: int | None = None,
        traceparent: str | None = None,
    ) -> str:
        """agentfn_wf_create: create a workflow and enqueue its root steps; returns its id.

        ``steps``: WorkflowStep objects or dicts with id, capability, input, depends_on and
        optionally max_attempts, timeout_ms, priority. ``chain=True``: each step depends on the
        one before it (give no depends_on). ``context``: the initial shared context document.
        BadArgument / CycleError / LimitExceeded when the graph is refused (nothing is written);
        InvalidState when ``workflow_id`` exists. ``traceparent``: the W3C trace context every
        step's task carries (as submit's); by default the current OpenTelemetry span's.
        """
        definition = build_definition(steps, policy=policy, workflow_id=workflow_id, chain=chain)
        return self._call(
            "agentfn_wf_create",
            [definition],
            {
                "RETENTION_MS": retention_ms,
                "CONTEXT": None if context is None else dict(context),
                "TRACEPARENT": traceparent_option(traceparent),
            },
            one_field("id"),
        )

    def get_workflow(
        self,
        workflow_id: str,
        *,
        steps: bool = True,
        offset: int | None = None,
        count: int | None = None,
    ) -> WorkflowInfo:
        """agentfn_wf_get: the workflow's state and (unless steps=False) its steps', all of them
        or a page: ``count`` steps from position ``offset`` of the definition order."""
        return self._call(
            "agentfn_wf_get",
            [workflow_id],
            {
                "STEPS": None if steps else False,
                "OFFSET": offset if steps else None,
                "COUNT": count if steps else None,
            },
            WorkflowInfo.from_reply,
        )

    def cancel_workflow(self, workflow_id: str) -> str:
        """agentfn_wf_cancel: cancel the workflow and its unfinished steps' tasks; returns the previous state."""
        return self._call("agentfn_wf_cancel", [workflow_id], None, one_field("was"))

    def signal(self, workflow_id: str, step_id: str, value: Any) -> str:
        """agentfn_wf_signal: give an input-required step its input (any JSON value); returns the new task's id.

        The step runs again; its task's inputs carry ``"_signal": value``.
        """
        return self._call(
            "agentfn_wf_signal", [workflow_id, step_id, json_text(value)], None, one_field("task")
        )

    def ctx_get(self, workflow_id: str) -> WorkflowContext:
        """agentfn_ctx_get: the workflow's shared context document and its version."""
        return self._call("agentfn_ctx_get", [workflow_id], None, WorkflowContext.from_reply)

    def ctx_set(
        self,
        workflow_id: str,
        document: Mapping[str, Any],
        *,
        mode: str = "set",
        expect_version: int | None = None,
    ) -> int:
        """agentfn_ctx_set: replace the context (mode 'set') or set top-level fields ('merge'; a
        None value removes the field); returns the new version. Conflict when ``expect_version``
        is given and is not the current version (nothing is written).
        """
        return self._call(
            "agentfn_ctx_set",
            [workflow_id, dict(document)],
            {"MODE": mode, "EXPECT_VERSION": expect_version},
            one_field("version", as_int),
        )

    def wait_workflow(
        self, workflow_id: str, timeout: float | None = None, *, until_input: bool = False
    ) -> WorkflowInfo:
        """Block until the workflow completes, fails or is canceled, and return it with its steps.

        No polling: subscribes to the workflow's channel, then reads its state, then waits for
        messages. ``until_input=True`` also returns when a step waits for input. TimeoutError
        after ``timeout`` seconds (None: wait as long as it takes).
        """
        if is_async(self.redis):
            return _wait_async(self, workflow_id, timeout, until_input)  # type: ignore[return-value]
        return _wait_sync(self, workflow_id, timeout, until_input)
