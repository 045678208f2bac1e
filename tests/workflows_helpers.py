"""Helpers shared by the workflow test modules: raw FCALL wrappers and tiny worker loops.

The worker loops stand in for the agent runtime: they claim with the task API, hand each task to
a handler, and complete (or fail) it. When nothing is ready they block with XREAD BLOCK on the
streams the empty claim named (agentfn.client.waiting.wait_for_work), never with a sleep.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

import agentfn
from agentfn.client.api.tasks import ClaimedTask
from agentfn.client.waiting import wait_for_work

from .helpers import ROOT, fcall, pairs

#: The capability every test step uses, and the one that only wakes blocked workers.
CAPABILITY = "step"
WAKE = "wake"


def create(r: redis.Redis, definition: Any, *options: Any) -> dict[str, Any]:
    """agentfn_wf_create with a definition (dict/list as JSON, str as it is)."""
    text = definition if isinstance(definition, str) else json.dumps(definition)
    return pairs(fcall(r, "agentfn_wf_create", text, *options))


def wf_get(
    r: redis.Redis, workflow_id: str, *options: Any
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """agentfn_wf_get (FCALL_RO): the summary and {step id: step fields}."""
    summary = pairs(r.execute_command("FCALL_RO", "agentfn_wf_get", 1, ROOT, workflow_id, *options))
    steps = {step["id"]: step for step in map(pairs, summary.pop("steps", []))}
    return summary, steps


def states(r: redis.Redis, workflow_id: str) -> dict[str, str]:
    return {step_id: step["state"] for step_id, step in wf_get(r, workflow_id)[1].items()}


def steps(*specs: tuple[str, list[str]], capability: str = CAPABILITY) -> list[dict[str, Any]]:
    """Definition steps from (id, depends_on) pairs; each input names its step."""
    return [
        {"id": step_id, "capability": capability, "input": {"step": step_id}, "depends_on": deps}
        for step_id, deps in specs
    ]


@dataclass
class Fail(Exception):
    """Raised by a handler: fail the task with this error (retry as given)."""

    error: str = "boom"
    retry: bool = False


@dataclass
class AskInput:
    """Returned by a handler: complete the task with INPUT_REQUIRED and this prompt."""

    prompt: Any


Handler = Callable[[ClaimedTask], Any]


def echo(task: ClaimedTask) -> Any:
    """The default handler: the step's result names it and carries its inputs."""
    return {"step": task.step, "inputs": task.inputs}


def settle(client: agentfn.Client, task: ClaimedTask, handler: Handler) -> None:
    """Run one task through the handler and finish it as the handler says."""
    try:
        outcome = handler(task)
    except Fail as failure:
        client.fail(task.id, task.token, failure.error, retry=failure.retry)
        return
    if isinstance(outcome, AskInput):
        client.complete(task.id, task.token, None, input_required=outcome.prompt)
    else:
        client.complete(task.id, task.token, outcome)


def run_until(
    client: agentfn.Client,
    agent_id: str,
    workflow_id: str,
    handler: Handler = echo,
    *,
    until_input: bool = False,
    timeout: float = 10.0,
) -> agentfn.WorkflowInfo:
    """One worker loop on this thread until the workflow is no longer running (or, with
    until_input, a step waits for input); returns the workflow with its steps."""
    deadline = time.monotonic() + timeout
    while True:
        claim = client.claim(agent_id, 16)
        for task in claim.tasks:
            settle(client, task, handler)
        if claim.tasks:
            continue
        info = client.get_workflow(workflow_id, steps=False)
        if info.done or (until_input and info.input_required):
            return client.get_workflow(workflow_id)
        remaining_ms = (deadline - time.monotonic()) * 1000
        if remaining_ms <= 0:
            raise TimeoutError(
                f"workflow {workflow_id} still running: {client.get_workflow(workflow_id)}"
            )
        wait_for_work(client.redis, claim, remaining_ms)


@contextmanager
def workers(
    client: agentfn.Client,
    count: int,
    handler: Handler = echo,
    capabilities: tuple[str, ...] = (CAPABILITY,),
) -> Iterator[list[BaseException]]:
    """``count`` worker threads (agents w0, w1, ...) for the duration of the block; yields the list
    of errors they hit (the block should assert it is empty). On exit a task for WAKE wakes every
    worker blocked on XREAD, so they stop at once."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop(agent_id: str) -> None:
        try:
            while not stop.is_set():
                claim = client.claim(agent_id, 4)
                for task in claim.tasks:
                    if task.capability != WAKE:
                        settle(client, task, handler)
                if not claim.tasks and not stop.is_set():
                    wait_for_work(client.redis, claim, 30_000)
        except BaseException as error:  # noqa: BLE001 - reported to the test
            errors.append(error)

    threads = []
    for index in range(count):
        client.agent_register(f"w{index}", [*capabilities, WAKE], ttl_ms=600_000)
        threads.append(threading.Thread(target=loop, args=(f"w{index}",), daemon=True))
    for thread in threads:
        thread.start()
    try:
        yield errors
    finally:
        stop.set()
        client.submit(WAKE, None)
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads), "a worker did not stop"
