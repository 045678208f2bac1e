"""Agents for `agentfn worker` in the cluster tests (their handlers touch no other key)."""

from __future__ import annotations

from typing import Any

import agentfn

#: `agentfn worker tests.cluster.agents:echo`: returns the payload.
echo = agentfn.Agent(None, "echo-agent", concurrency=4)


@echo.handler("echo")
def run_echo(task: agentfn.TaskContext) -> Any:
    return task.payload
