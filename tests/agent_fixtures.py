"""Agents for the runtime tests, importable by ``agentfn worker tests.agent_fixtures:<name>``.

Handlers report what they do on Redis lists, so that a test (possibly in another process)
waits on events (BLPOP) instead of sleeping:

- ``agentfn-test:started``: ``<agent>:<task id>:<attempt>`` when a handler starts;
- ``agentfn-test:release:<task id>``: a handler that waits for permission BLPOPs this list.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import agentfn
from agentfn import keys

REPO = Path(__file__).resolve().parent.parent

STARTED = "agentfn-test:started"

T = TypeVar("T")


def release_key(task_id: str) -> str:
    return f"agentfn-test:release:{task_id}"


def report_start(task: agentfn.TaskContext) -> None:
    task.client.redis.rpush(STARTED, f"{task.agent_id}:{task.id}:{task.attempt}")


def crash_agent(client: agentfn.Client) -> agentfn.Agent:
    """Attempt 1 of a `crashy` task blocks (until the process is killed); later attempts finish.

    Short leases (renewed every ~150 ms) and a fast reaper, so that a dead agent's task is
    redelivered within a second.
    """
    agent = agentfn.Agent(
        client, "crash-agent", lease_ms=450, reap_interval_ms=100, heartbeat_interval_ms=1000
    )

    @agent.handler("crashy")
    def crashy(task: agentfn.TaskContext) -> dict[str, Any]:
        report_start(task)
        if task.attempt == 1:
            task.wait_interrupted(60)
        return {"agent": task.agent_id, "attempt": task.attempt}

    return agent


def gated_agent(client: agentfn.Client) -> agentfn.Agent:
    """Concurrency 2, grace period 1 s: a `gated` task runs until its release list gets an item."""
    agent = agentfn.Agent(client, "gated-agent", concurrency=2, grace_period_s=1.0)

    @agent.handler("gated")
    def gated(task: agentfn.TaskContext) -> str:
        report_start(task)
        task.client.redis.blpop([release_key(task.id)], timeout=30)
        return "released"

    return agent


#: An Agent object (not a factory), for `agentfn worker tests.agent_fixtures:plain`: the command binds its client.
plain = agentfn.Agent(None, "plain-agent")


@plain.handler("echo")
def echo(task: agentfn.TaskContext) -> Any:
    report_start(task)
    return task.payload


# -- helpers for the tests (not agents) --------------------------------------------------------


def wait_for(client: agentfn.Client, check: Callable[[], T], what: str, timeout: float = 10.0) -> T:
    """Block until ``check()`` returns something true, and return it: XREAD BLOCK on the
    namespace's event stream from its newest id read before each check, so no transition is
    missed."""
    events = keys.events(client.namespace)
    deadline = time.monotonic() + timeout
    while True:
        newest = client.redis.xrevrange(events, count=1)
        last_id = newest[0][0] if newest else "0-0"
        value = check()
        remaining = deadline - time.monotonic()
        if value:
            return value
        if remaining <= 0:
            raise AssertionError(f"{what}: not after {timeout} s")
        client.redis.execute_command(
            "XREAD", "BLOCK", max(1, int(remaining * 1000)), "STREAMS", events, last_id
        )


def wait_for_task(
    client: agentfn.Client, task_id: str, states: set[str], timeout: float = 10.0
) -> agentfn.TaskInfo:
    """Block until the task is in one of ``states`` (see wait_for)."""
    last: list[agentfn.TaskInfo] = []

    def check() -> agentfn.TaskInfo | None:
        last[:] = [client.get_task(task_id)]
        return last[0] if last[0].state in states else None

    try:
        return wait_for(client, check, f"task {task_id}", timeout)
    except AssertionError:
        raise AssertionError(
            f"task {task_id} is {last[0].state} after {timeout} s, expected one of {states}"
        ) from None


def wait_server_ms(client: agentfn.Client, milliseconds: int) -> None:
    """Let time pass on the server's clock: BLPOP a list nobody writes (an event wait, not a sleep)."""
    client.redis.blpop(["agentfn-test:never"], timeout=milliseconds / 1000)


@contextmanager
def serving(agent: agentfn.Agent) -> Iterator[agentfn.Agent]:
    """Run the agent in a thread for the block; stop it and check that it ended."""
    thread = agent.start()
    try:
        yield agent
    finally:
        agent.stop(now=True)
        thread.join(timeout=10)
        assert not thread.is_alive(), f"agent {agent.agent_id} did not stop"


def spawn_worker(
    redis_url: str, target: str, *options: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``python -m agentfn worker <target> --url <redis_url> <options>`` from the repository root
    (``env``: variables added to this process's environment)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentfn",
            "worker",
            target,
            "--url",
            redis_url,
            "--log-level",
            "WARNING",
            *options,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else {**os.environ, **env},
    )


#: An agent without a single handler: `agentfn worker` refuses it.
idle = agentfn.Agent(None, "idle-agent")


def broken_factory(client: agentfn.Client) -> agentfn.Agent:
    """An agent factory that fails (a missing setting): `agentfn worker` reports it in one line."""
    raise KeyError("MODEL")
