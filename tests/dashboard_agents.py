"""Agents for the dashboard tests, served by ``agentfn worker tests.dashboard_agents:<name>``.

- ``gate``: a step that finishes when the test pushes to ``dashboard-test:release:<workflow>:<step>``
  (so a test decides when each step of a workflow completes);
- ``ask``: asks for input (InputRequired) until the workflow is signaled, then returns the answer;
- ``flaky``: fails its first attempt, succeeds after (a task with one attempt goes dead, and a
  requeued one completes);
- ``noop``: returns its payload.
"""

from __future__ import annotations

from typing import Any

import agentfn


def release_key(workflow_id: str, step_id: str) -> str:
    return f"dashboard-test:release:{workflow_id}:{step_id}"


def worker(client: agentfn.Client) -> agentfn.Agent:
    agent = agentfn.Agent(client, "dash-worker", concurrency=8)

    @agent.handler("gate")
    def gate(task: agentfn.TaskContext) -> dict[str, Any]:
        task.client.redis.blpop(
            [release_key(task.task.workflow or "", task.task.step or "")], timeout=60
        )
        return {"step": task.task.step}

    @agent.handler("ask")
    def ask(task: agentfn.TaskContext) -> dict[str, Any]:
        inputs = task.task.inputs or {}
        if "_signal" not in inputs:
            raise agentfn.InputRequired({"question": "which colour?"})
        return {"answer": inputs["_signal"]}

    @agent.handler("flaky")
    def flaky(task: agentfn.TaskContext) -> dict[str, Any]:
        if task.attempt == 1:
            raise RuntimeError("the first attempt always fails")
        return {"attempt": task.attempt}

    @agent.handler("noop")
    def noop(task: agentfn.TaskContext) -> Any:
        return task.payload

    return agent


def watcher(client: agentfn.Client) -> agentfn.Agent:
    """An agent that only shows up: the test names it with --agent-id."""
    agent = agentfn.Agent(client, "watcher", heartbeat_interval_ms=500)

    @agent.handler("watch")
    def watch(task: agentfn.TaskContext) -> None:
        return None

    return agent
