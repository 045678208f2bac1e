"""Agents for the MCP and A2A tests, served by ``agentfn worker tests.bridge_agents:team``.

- ``research``: ``{"topic", "notes"}`` for the payload's topic;
- ``write``: joins its dependencies' notes into an article (``context`` adds the workflow's
  shared ``audience``);
- ``review``: asks for input (``{"question": ...}``) until the step is signalled, then returns
  the answer;
- ``hold``: runs until its task is canceled (for cancel tests);
- message type ``ping``: replies ``{"pong": <content>}``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import agentfn
from agentfn import keys

from .agent_fixtures import REPO, spawn_worker

team = agentfn.Agent(None, "team-1", concurrency=4, grace_period_s=1.0, lease_ms=3000)


@team.handler("research")
def research(task: agentfn.TaskContext) -> dict[str, Any]:
    topic = (task.payload or {}).get("topic") or (task.payload or {}).get("text")
    if not topic:
        raise agentfn.PermanentFailure("no topic")
    return {"topic": topic, "notes": f"notes on {topic}"}


@team.handler("write")
def write(task: agentfn.TaskContext) -> dict[str, Any]:
    notes = [
        result["notes"] for name, result in sorted((task.inputs or {}).items()) if name != "_signal"
    ]
    audience = (
        task.client.ctx_get(task.workflow).document.get("audience") if task.workflow else None
    )
    return {"article": " / ".join(notes), "audience": audience}


@team.handler("review")
def review(task: agentfn.TaskContext) -> dict[str, Any]:
    answer = (task.inputs or {}).get("_signal")
    if answer is None:
        raise agentfn.InputRequired({"question": f"publish {task.payload}?"})
    return {"reviewed": task.payload, "answer": answer}


@team.handler("hold")
def hold(task: agentfn.TaskContext) -> str:
    task.wait_interrupted(60)
    return "interrupted"


@team.on_message("ping")
def ping(message: agentfn.Message) -> dict[str, Any]:
    return {"pong": message.content}


@contextmanager
def serving_team(client: agentfn.Client, redis_url: str) -> Iterator[subprocess.Popen[str]]:
    """``team`` in its own OS process (``agentfn worker``) in ``client``'s namespace, registered
    when the block starts."""
    stream = keys.events(client.namespace)
    newest = client.redis.xrevrange(stream, count=1)  # before the spawn: no event missed
    last_id = newest[0][0] if newest else "0-0"
    worker = spawn_worker(redis_url, "tests.bridge_agents:team", "--namespace", client.namespace)
    try:
        while not client.agent_find("research"):  # woken by its agent.registered event
            assert worker.poll() is None, worker.communicate()[1]
            for _, entries in client.redis.xread({stream: last_id}, block=5_000) or []:
                last_id = entries[-1][0]
        yield worker
    finally:
        worker.terminate()
        worker.communicate(timeout=15)


@contextmanager
def announced_server(command: str, *arguments: str) -> Iterator[str]:
    """``agentfn <command> <arguments>`` (mcp --http, a2a) as its own process; yields the URL its
    first stderr line announces (the socket listens before that line is written)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "agentfn", command, *arguments],
        cwd=REPO,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stderr.readline()
        assert line.startswith(f"agentfn {command}: serving http://"), line
        yield line.split()[3]
    finally:
        process.terminate()
        process.communicate(timeout=15)
