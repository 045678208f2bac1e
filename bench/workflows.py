"""Workflows benchmark: end-to-end steps/s through the graph functions, and graph creation time.

Run alone: ``.venv/bin/python bench/workflows.py [--steps N] [--creates N]``. It starts its own
redis-server (persistence off) on a free port in a temporary directory, deploys the library,
measures, prints the figures and stops the server. ``run()`` returns them as a dict.

What is measured (one client process, one worker loop, loopback):
- chain: chains of N steps (the most a workflow may have), one after another until 3,000 steps
  ran; from agentfn_wf_create to the last workflow completed. The worker
  completes each step with NEXT, so finishing a step and claiming the one it unblocked (enqueued
  by the library in that same call) is one round trip.
- fan-out/fan-in: 1 -> N-2 -> 1 (a root, N-2 steps that depend on it, a join that depends on
  all of them), repeated the same way,
  claimed in batches of BATCH; the last completion of each batch claims the next batch (NEXT).
- create: agentfn_wf_create of an N-step graph (a chain of steps with a small JSON input each),
  as the client sees it (round trip included); median and best of ``creates`` runs.
Targets: >= 3,000 steps/s; a graph of the most steps (150) created in < 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import agentfn  # noqa: E402
from agentfn.client.api.tasks import ClaimResult  # noqa: E402
from agentfn.client.waiting import wait_for_work  # noqa: E402
from agentfn.constants import LIMITS  # noqa: E402
from agentfn.server import EmbeddedRedis  # noqa: E402

#: Tasks claimed at once by the fan-out worker.
BATCH = min(100, LIMITS["claim_count"])
#: The worker's agent id and the steps' capability.
WORKER = "bench-worker"
CAPABILITY = "bench-step"
#: What every step returns.
RESULT = {"ok": True}


def _chain(steps: int) -> list[dict[str, Any]]:
    return [
        {"id": f"s{index}", "capability": CAPABILITY, "input": {"n": index}}
        for index in range(steps)
    ]


def _fan(width: int) -> list[dict[str, Any]]:
    middle = [f"m{index}" for index in range(width)]
    return (
        [{"id": "root", "capability": CAPABILITY}]
        + [{"id": step, "capability": CAPABILITY, "depends_on": ["root"]} for step in middle]
        + [{"id": "join", "capability": CAPABILITY, "depends_on": middle}]
    )


def _work(client: agentfn.Client, workflow_id: str, batch: int) -> int:
    """One worker loop until the workflow is no longer running; returns how many steps it ran."""
    ran = 0
    claim: ClaimResult = client.claim(WORKER, batch)
    while True:
        if not claim.tasks:
            if client.get_workflow(workflow_id, steps=False).done:
                return ran
            wait_for_work(client.redis, claim, 5_000)
            claim = client.claim(WORKER, batch)
            continue
        *rest, last = claim.tasks
        for task in rest:
            client.complete(task.id, task.token, RESULT)
        next_claim = client.complete(last.id, last.token, RESULT, next=batch).next
        assert next_claim is not None
        ran += len(claim.tasks)
        claim = next_claim


def _steps_per_s(
    client: agentfn.Client,
    steps: list[dict[str, Any]],
    batch: int,
    chain: bool,
    total: int = 3_000,
) -> float:
    """Steps/s over workflows of this definition run one after another until at least
    ``total`` steps ran (a workflow is at most LIMITS["workflow_steps"] steps)."""
    begun = time.perf_counter()
    ran_all = 0
    while ran_all < total:
        workflow_id = client.create_workflow(steps, chain=chain)
        ran = _work(client, workflow_id, batch)
        info = client.get_workflow(workflow_id, steps=False)
        if info.state != agentfn.WorkflowState.COMPLETED or ran != len(steps):
            raise RuntimeError(
                f"workflow {workflow_id} ended {info.state.value} after {ran} of {len(steps)} steps"
            )
        ran_all += ran
    return round(ran_all / (time.perf_counter() - begun), 1)


def _create_ms(client: agentfn.Client, steps: int, runs: int) -> tuple[float, float]:
    definition = _chain(steps)
    times = []
    for _ in range(runs):
        begun = time.perf_counter()
        client.create_workflow(definition, chain=True)
        times.append((time.perf_counter() - begun) * 1000)
    return round(statistics.median(times), 2), round(min(times), 2)


def run(steps: int = LIMITS["workflow_steps"], creates: int = 20) -> dict[str, Any]:
    """Measure on a private redis-server; returns the figures (rates in steps/s, times in ms)."""
    with EmbeddedRedis() as server:
        connection = redis.Redis(host=server.host, port=server.port)
        agentfn.deploy(connection, "default")
        client = agentfn.Client(connection)
        client.agent_register(WORKER, [CAPABILITY], ttl_ms=3_600_000)
        results: dict[str, Any] = {"steps": steps}
        results["chain_steps_per_s"] = _steps_per_s(client, _chain(steps), 1, chain=True)
        results["fan_out_fan_in_steps_per_s"] = _steps_per_s(
            client, _fan(steps - 2), BATCH, chain=False
        )
        median, best = _create_ms(client, steps, creates)
        results["create_graph_ms_median"] = median
        results["create_graph_ms_best"] = best
        connection.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps",
        type=int,
        default=LIMITS["workflow_steps"],
        help="steps in the chain, width of the fan-out, graph size",
    )
    parser.add_argument("--creates", type=int, default=20, help="graph creations to time")
    options = parser.parse_args()
    results = run(options.steps, options.creates)
    width = max(len(name) for name in results)
    for name, value in results.items():
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
