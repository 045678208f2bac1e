"""Agents for `agentfn worker` in the cluster tests (their handlers touch no other key)."""

from __future__ import annotations

import collections
import threading
from typing import Any

import agentfn

#: `agentfn worker tests.cluster.agents:echo`: returns the payload.
echo = agentfn.Agent(None, "echo-agent", concurrency=4)


@echo.handler("echo")
def run_echo(task: agentfn.TaskContext) -> Any:
    return task.payload


def counting_echo(
    client: agentfn.Client, agent_id: str, **settings: Any
) -> tuple[agentfn.Agent, collections.Counter[str]]:
    """An in-process echo agent and how many times its handler ran for each task id."""
    runs: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    agent = agentfn.Agent(client, agent_id, **settings)

    @agent.handler("echo")
    def count(task: agentfn.TaskContext) -> Any:
        with lock:
            runs[task.id] += 1
        return task.payload

    return agent, runs
