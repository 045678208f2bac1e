"""Property: over random DAGs, with four worker threads claiming and completing concurrently,
every step runs exactly once, and only after all of its dependencies completed."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentfn import StepState, WorkflowState

from .workflows_helpers import CAPABILITY, workers


@st.composite
def dags(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1-30 steps; each may depend on any of the steps generated before it (so no cycle), and the
    definition lists them in a random order."""
    size = draw(st.integers(1, 30))
    steps = []
    for index in range(size):
        depends_on = sorted(draw(st.sets(st.integers(0, index - 1), max_size=4))) if index else []
        steps.append(
            {
                "id": f"s{index}",
                "capability": CAPABILITY,
                "input": index,
                "depends_on": [f"s{dep}" for dep in depends_on],
            }
        )
    return draw(st.permutations(steps))


def test_random_dags_run_each_step_once_after_its_dependencies(client):
    runs: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()

    def handler(task):
        with lock:
            runs[(task.workflow, task.step)] += 1
        # The inputs are the results of exactly the step's dependencies, so each had completed.
        return {"step": task.step, "saw": sorted(task.inputs or {})}

    with workers(client, 4, handler) as errors:

        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(dags())
        def check(steps: list[dict[str, Any]]) -> None:
            workflow_id = client.create_workflow(steps)
            info = client.wait_workflow(workflow_id, timeout=30)
            assert info.state == WorkflowState.COMPLETED, info
            by_id = {step.id: step for step in info.steps}
            for step in steps:
                assert runs[(workflow_id, step["id"])] == 1, step["id"]
                ran = by_id[step["id"]]
                assert ran.state == StepState.COMPLETED and ran.attempts == 1
                assert ran.result == {"step": step["id"], "saw": sorted(step["depends_on"])}
                for dependency in step["depends_on"]:
                    assert by_id[dependency].finished_ms <= ran.started_ms
                    assert by_id[dependency].finished_ms <= ran.queued_ms

        check()
    assert errors == []
