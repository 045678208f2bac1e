"""Orchestrator: run a multi-agent workflow and return its results, without polling.

The graph runs inside the library (agentfn_wf_create enqueues the root steps; completing a step
enqueues the steps it unblocks, in the same call); the orchestrator only creates the workflow and
blocks on its channel until it finishes (:meth:`~agentfn.Client.wait_workflow`).

Definitions are dicts (or a plain list of steps). A step: ``{"id", "capability", "input",
"depends_on", "max_attempts", "timeout_ms", "priority"}``; ``agent_type`` is accepted for
``capability`` and ``task_data`` for ``input``, and a step without an id gets ``step-<n>``
(1-based position).

- :meth:`Orchestrator.execute_workflow`: the steps run one after another (a chain); each step's
  task gets the previous step's result in ``inputs``.
- :meth:`Orchestrator.execute_parallel_workflow`: ``{"steps": [...]}`` with ``depends_on`` (any
  DAG: fan-out, fan-in), or ``{"groups": [[step, ...], [step, ...]]}``: dependency groups, where
  each step of a group depends on every step of the group before it.

Both return ``{step id: result}`` in definition order once every step completed, and raise
:class:`WorkflowFailed` (carrying the final :class:`~agentfn.WorkflowInfo`) otherwise. With an
:class:`~agentfn.AsyncClient` they return awaitables.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from ..constants import WorkflowPolicy, WorkflowState
from ..errors import AgentfnError, InvalidState
from .api.workflows import WorkflowInfo
from .client import AsyncClient, Client

#: Accepted spellings of a step's fields (as multi-agent tutorials name them) -> ours.
_ALIASES = {"agent_type": "capability", "task_data": "input"}

Definition = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class _CreateOptions(TypedDict):
    """The options of the create_workflow call that starts a definition (mypy checks them)."""

    policy: WorkflowPolicy | str
    workflow_id: str | None
    chain: bool
    context: Mapping[str, Any] | None
    retention_ms: int | None


class WorkflowFailed(AgentfnError):
    """The workflow failed or was canceled; ``info`` is its final state (with every step)."""

    def __init__(self, info: WorkflowInfo) -> None:
        super().__init__(
            f"workflow {info.id} {info.state.value}: {info.error or 'no error recorded'}"
        )
        self.info = info


def _normalize_step(step: Mapping[str, Any], position: int) -> dict[str, Any]:
    normal = {_ALIASES.get(name, name): value for name, value in step.items()}
    normal.setdefault("id", f"step-{position}")
    return normal


def _steps_of(definition: Definition) -> list[dict[str, Any]]:
    raw = definition if isinstance(definition, Sequence) else definition.get("steps", ())
    return [_normalize_step(step, position) for position, step in enumerate(raw, start=1)]


def _grouped_steps(groups: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Steps of dependency groups: each step depends on every step of the group before it."""
    steps: list[dict[str, Any]] = []
    previous: list[str] = []
    for group in groups:
        current = []
        for step in group:
            normal = _normalize_step(step, len(steps) + 1)
            if "depends_on" in normal:
                raise ValueError(
                    f"step {normal['id']}: a grouped step takes its dependencies from its group"
                )
            if previous:
                normal["depends_on"] = previous
            steps.append(normal)
            current.append(normal["id"])
        previous = current
    return steps


class Orchestrator:
    """Runs workflows through a Client (sync) or an AsyncClient (every method returns an awaitable)."""

    def __init__(
        self,
        client: Client | AsyncClient,
        *,
        timeout: float | None = None,
        retention_ms: int | None = None,
    ) -> None:
        self.client = client
        self.timeout = timeout
        """Default seconds to wait for a workflow (None: as long as it takes)."""
        self.retention_ms = retention_ms

    def execute_workflow(
        self, definition: Definition, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Run the steps in order (a chain); returns {step id: result}."""
        steps = _steps_of(definition)
        for step in steps:
            if "depends_on" in step:
                raise ValueError(
                    f"step {step['id']}: a sequential workflow takes no depends_on "
                    "(use execute_parallel_workflow)"
                )
        return self._run(steps, definition, chain=True, timeout=timeout)

    def execute_parallel_workflow(
        self, definition: Definition, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Run a graph (steps with depends_on, or dependency groups); returns {step id: result}."""
        if isinstance(definition, Mapping) and "groups" in definition:
            steps = _grouped_steps(definition["groups"])
        else:
            steps = _steps_of(definition)
        return self._run(steps, definition, chain=False, timeout=timeout)

    def _run(
        self,
        steps: list[dict[str, Any]],
        definition: Definition,
        *,
        chain: bool,
        timeout: float | None,
    ) -> dict[str, Any]:
        """The results (an awaitable of them on an AsyncClient, typed as the sync client sees it)."""
        options = definition if isinstance(definition, Mapping) else {}
        create = _CreateOptions(
            policy=options.get("policy", WorkflowPolicy.FAIL_FAST),
            workflow_id=options.get("id"),
            chain=chain,
            context=options.get("context"),
            retention_ms=self.retention_ms,
        )
        wait = timeout if timeout is not None else self.timeout
        if isinstance(self.client, AsyncClient):
            return _run_async(self.client, steps, create, wait)  # type: ignore[return-value]
        workflow_id = self.client.create_workflow(steps, **create)
        try:
            info = self.client.wait_workflow(workflow_id, wait)
        except TimeoutError:  # cancel what nobody waits for (it may have just finished)
            with contextlib.suppress(InvalidState):
                self.client.cancel_workflow(workflow_id)
            raise
        return _results(info)


async def _run_async(
    client: AsyncClient, steps: list[dict[str, Any]], create: _CreateOptions, wait: float | None
) -> dict[str, Any]:
    """Orchestrator._run on an AsyncClient."""
    workflow_id = await client.create_workflow(steps, **create)
    try:
        info = await client.wait_workflow(workflow_id, wait)
    except TimeoutError:
        with contextlib.suppress(InvalidState):
            await client.cancel_workflow(workflow_id)
        raise
    return _results(info)


def _results(info: WorkflowInfo) -> dict[str, Any]:
    if info.state != WorkflowState.COMPLETED:
        raise WorkflowFailed(info)
    return info.results
