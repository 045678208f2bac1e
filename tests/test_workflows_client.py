"""Workflows through the Python client (sync and asyncio), the waiter, the orchestrator, and the
shared context under racing writers."""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis
import redis.asyncio

import agentfn
from agentfn import StepState, WorkflowPolicy, WorkflowState, WorkflowStep
from agentfn.client.orchestrator import Orchestrator, WorkflowFailed
from agentfn.errors import BadArgument, Conflict, CycleError, InvalidState, NotFound

from .workflows_helpers import CAPABILITY, AskInput, Fail, echo, run_until, workers


@pytest.fixture
def agent(client):
    client.agent_register("a1", [CAPABILITY], ttl_ms=600_000)
    return "a1"


def test_create_wait_and_read_results(client):
    definition = [
        WorkflowStep("fetch", CAPABILITY, {"url": "u"}),
        {"id": "left", "capability": CAPABILITY, "depends_on": ["fetch"]},
        WorkflowStep("right", CAPABILITY, depends_on=["fetch"], max_attempts=2, priority="high"),
        WorkflowStep("join", CAPABILITY, depends_on=("left", "right")),
    ]
    workflow_id = client.create_workflow(definition, workflow_id="diamond")
    assert workflow_id == "diamond"
    with workers(client, 2) as errors:
        info = client.wait_workflow(workflow_id, timeout=10)
    assert errors == []
    assert info.state == WorkflowState.COMPLETED and info.done and info.completed == 4
    assert [step.state for step in info.steps] == [StepState.COMPLETED] * 4
    assert info.results["join"] == {
        "step": "join",
        "inputs": {"left": info.results["left"], "right": info.results["right"]},
    }
    join = info.step("join")
    assert (
        join.depends_on == ("left", "right")
        and join.attempts == 1
        and join.task_state == "completed"
    )
    assert join.started_ms is not None and join.finished_ms >= join.started_ms
    assert client.get_task(info.step("right").task).priority == "high"


def test_chain_helper_and_policy_enum(client, agent):
    workflow_id = client.create_workflow(
        [WorkflowStep(f"s{i}", CAPABILITY, i) for i in range(3)],
        chain=True,
        policy=WorkflowPolicy.CONTINUE,
    )
    info = run_until(client, agent, workflow_id)
    assert info.policy == WorkflowPolicy.CONTINUE and info.state == WorkflowState.COMPLETED
    assert info.results["s2"]["inputs"] == {"s1": info.results["s1"]}


def test_refusals_map_to_exceptions(client):
    with pytest.raises(CycleError, match="a -> b -> a"):
        client.create_workflow(
            [
                {"id": "a", "capability": CAPABILITY, "depends_on": ["b"]},
                {"id": "b", "capability": CAPABILITY, "depends_on": ["a"]},
            ]
        )
    with pytest.raises(BadArgument):
        client.create_workflow([])
    with pytest.raises(ValueError):
        client.create_workflow([{"id": "a", "capability": CAPABILITY}], policy="sometimes")
    client.create_workflow([{"id": "a", "capability": CAPABILITY}], workflow_id="once")
    with pytest.raises(InvalidState):
        client.create_workflow([{"id": "a", "capability": CAPABILITY}], workflow_id="once")
    with pytest.raises(NotFound):
        client.get_workflow("ghost")


def test_wait_returns_at_once_for_a_finished_workflow_and_times_out_otherwise(client, agent):
    workflow_id = client.create_workflow([{"id": "a", "capability": CAPABILITY}])
    run_until(client, agent, workflow_id)
    assert client.wait_workflow(workflow_id, timeout=5).state == WorkflowState.COMPLETED
    pending = client.create_workflow([{"id": "a", "capability": "nobody-has-it"}])
    with pytest.raises(TimeoutError, match=pending):
        client.wait_workflow(pending, timeout=0.2)


def test_wait_until_input_then_signal(client, agent):
    def ask_once(task):
        if task.step == "review" and not (task.inputs or {}).get("_signal"):
            return AskInput({"question": "publish?"})
        return echo(task)

    workflow_id = client.create_workflow(
        [WorkflowStep("draft", CAPABILITY), WorkflowStep("review", CAPABILITY)], chain=True
    )
    with workers(client, 1, ask_once) as errors:
        waiting = client.wait_workflow(workflow_id, timeout=10, until_input=True)
        assert waiting.state == WorkflowState.RUNNING and waiting.input_required == 1
        review = waiting.step("review")
        assert review.state == StepState.INPUT_REQUIRED and review.prompt == {
            "question": "publish?"
        }
        with pytest.raises(InvalidState):
            client.signal(workflow_id, "draft", True)
        task_id = client.signal(workflow_id, "review", {"approved": True})
        info = client.wait_workflow(workflow_id, timeout=10)
    assert errors == []
    assert info.state == WorkflowState.COMPLETED and info.step("review").task == task_id
    assert info.results["review"]["inputs"] == {
        "draft": info.results["draft"],
        "_signal": {"approved": True},
    }
    assert info.step("review").signal == {"approved": True} and info.step("review").attempts == 2


def test_failure_policies_through_the_client(client, agent):
    def handler(task):
        if task.step == "bad":
            raise Fail("it broke")
        return echo(task)

    steps = [
        WorkflowStep("bad", CAPABILITY),
        WorkflowStep("after", CAPABILITY, depends_on=["bad"]),
        WorkflowStep("other", CAPABILITY),
    ]
    fast = run_until(client, agent, client.create_workflow(steps), handler)
    assert fast.state == WorkflowState.FAILED and fast.error == "step bad failed: it broke"
    assert fast.step("after").state == StepState.CANCELED
    go_on = run_until(client, agent, client.create_workflow(steps, policy="continue"), handler)
    assert go_on.state == WorkflowState.FAILED
    assert [s.state for s in go_on.steps] == [
        StepState.FAILED,
        StepState.SKIPPED,
        StepState.COMPLETED,
    ]
    assert go_on.results == {"other": {"step": "other", "inputs": None}}


def test_cancel_through_the_client(client, agent):
    workflow_id = client.create_workflow(
        [WorkflowStep("a", CAPABILITY), WorkflowStep("b", CAPABILITY)], chain=True
    )
    assert client.cancel_workflow(workflow_id) == "running"
    info = client.wait_workflow(workflow_id, timeout=5)
    assert info.state == WorkflowState.CANCELED and info.canceled == 2
    assert client.get_task(info.step("a").task).state == "canceled"
    assert client.cancel_workflow(workflow_id) == "canceled"


def test_context_compare_and_set_between_racing_clients(client, redis_proc):
    workflow_id = client.create_workflow(
        [{"id": "a", "capability": CAPABILITY}], context={"count": 0}
    )
    rounds = 50
    both_read = threading.Barrier(2)
    conflicts = [0, 0]

    def writer(index: int) -> None:
        own = agentfn.Client(
            redis.Redis(host=redis_proc.host, port=redis_proc.port, decode_responses=True)
        )
        first = True
        done = 0
        while done < rounds:
            context = own.ctx_get(workflow_id)
            if first:  # both read version 0 before either writes: exactly one of them must lose
                both_read.wait(10)
                first = False
            try:
                own.ctx_set(
                    workflow_id,
                    {
                        **context.document,
                        "count": context.document["count"] + 1,
                        f"writer{index}": done,
                    },
                    expect_version=context.version,
                )
                done += 1
            except Conflict:
                conflicts[index] += 1
        own.redis.close()

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    context = client.ctx_get(workflow_id)
    assert context.document["count"] == 2 * rounds and context.version == 2 * rounds
    assert sum(conflicts) >= 1
    assert (
        client.ctx_set(workflow_id, {"writer0": None, "extra": [1]}, mode="merge") == 2 * rounds + 1
    )
    assert client.ctx_get(workflow_id).document == {
        "count": 2 * rounds,
        "writer1": rounds - 1,
        "extra": [1],
    }


def test_orchestrator_runs_sequential_and_parallel_workflows(client):
    orchestrator = Orchestrator(client, timeout=10)
    with workers(client, 3) as errors:
        sequential = orchestrator.execute_workflow(
            {
                "steps": [
                    {"agent_type": CAPABILITY, "task_data": {"q": "redis"}},
                    {"capability": CAPABILITY, "input": {"summarize": True}},
                ]
            }
        )
        parallel = orchestrator.execute_parallel_workflow(
            {
                "steps": [
                    {"id": "a", "capability": CAPABILITY},
                    {"id": "b", "capability": CAPABILITY},
                    {"id": "c", "capability": CAPABILITY, "depends_on": ["a", "b"]},
                ]
            }
        )
        grouped = orchestrator.execute_parallel_workflow(
            {
                "groups": [
                    [
                        {"id": "g1", "capability": CAPABILITY},
                        {"id": "g2", "capability": CAPABILITY},
                    ],
                    [{"id": "g3", "capability": CAPABILITY}],
                ]
            }
        )
    assert errors == []
    assert list(sequential) == ["step-1", "step-2"]
    assert sequential["step-2"]["inputs"] == {"step-1": sequential["step-1"]}
    assert parallel["c"]["inputs"] == {"a": parallel["a"], "b": parallel["b"]}
    assert grouped["g3"]["inputs"] == {"g1": grouped["g1"], "g2": grouped["g2"]}
    with pytest.raises(ValueError):
        orchestrator.execute_workflow([{"id": "x", "capability": CAPABILITY, "depends_on": []}])


def test_orchestrator_failure_and_timeout(client):
    def handler(task):
        raise Fail("nope")

    orchestrator = Orchestrator(client)
    with workers(client, 1, handler) as errors, pytest.raises(WorkflowFailed) as failed:
        orchestrator.execute_workflow([{"id": "only", "capability": CAPABILITY}], timeout=10)
    assert errors == []
    assert failed.value.info.state == WorkflowState.FAILED and "nope" in str(failed.value)
    with pytest.raises(TimeoutError):
        orchestrator.execute_workflow(
            {"id": "stuck", "steps": [{"capability": "nobody-has-it"}]}, timeout=0.2
        )
    assert client.get_workflow("stuck").state == WorkflowState.CANCELED  # not left running unseen


def test_async_client_and_orchestrator(client, redis_proc):
    async def scenario():
        connection = redis.asyncio.Redis(
            host=redis_proc.host, port=redis_proc.port, decode_responses=True
        )
        try:
            aclient = agentfn.AsyncClient(connection)
            workflow_id = await aclient.create_workflow(
                [WorkflowStep("a", CAPABILITY), WorkflowStep("b", CAPABILITY)],
                chain=True,
                context={"k": 1},
            )
            info = await aclient.wait_workflow(workflow_id, timeout=10)
            version = await aclient.ctx_set(workflow_id, {"k": 2}, expect_version=0)
            context = await aclient.ctx_get(workflow_id)
            with pytest.raises(Conflict):
                await aclient.ctx_set(workflow_id, {"k": 3}, expect_version=0)
            results = await Orchestrator(aclient, timeout=10).execute_parallel_workflow(
                [
                    {"id": "x", "capability": CAPABILITY},
                    {"id": "y", "capability": CAPABILITY, "depends_on": ["x"]},
                ]
            )
            pending = await aclient.create_workflow([{"id": "a", "capability": "nobody-has-it"}])
            with pytest.raises(TimeoutError):
                await aclient.wait_workflow(pending, timeout=0.2)
            assert await aclient.cancel_workflow(pending) == "running"
            return info, version, context, results
        finally:
            await connection.aclose()

    with workers(client, 2) as errors:
        info, version, context, results = asyncio.run(scenario())
    assert errors == []
    assert info.state == WorkflowState.COMPLETED and info.results["b"]["inputs"] == {
        "a": info.results["a"]
    }
    assert version == 1 and context.document == {"k": 2} and context.version == 1
    assert results["y"]["inputs"] == {"x": results["x"]}


def test_bytes_client_waits_too(redis_proc, deployed, client):
    raw_client = agentfn.Client(redis.Redis(host=redis_proc.host, port=redis_proc.port), "default")
    workflow_id = raw_client.create_workflow([{"id": "a", "capability": CAPABILITY, "input": "ü"}])
    with workers(client, 1) as errors:
        info = raw_client.wait_workflow(workflow_id, timeout=10)
    assert errors == [] and info.state == WorkflowState.COMPLETED and info.step("a").input == "ü"
    raw_client.redis.close()
