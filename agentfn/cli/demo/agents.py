"""The demo's agents: researchers, a writer and a coder, with small deterministic handlers.

Each runs as its own OS process, served by ``agentfn worker`` (``agentfn demo`` starts them)::

    agentfn worker agentfn.cli.demo.agents:researcher --agent-id researcher-1 --url redis://127.0.0.1:6379/0

A handler takes a moment (a few hundred ms, spent in ``task.wait_interrupted``, so a canceled
or timed-out task ends at once) and returns JSON. The writer checks a fact with the researcher
who found it (a request and its reply through the inboxes); the coder credits the researchers
whose findings made it into the example (one-way messages).
"""

from __future__ import annotations

import logging
from typing import Any

from ...agent.agent import Agent
from ...agent.types import TaskContext
from ...client.api.messages import Message
from ...client.client import Client

#: How long each kind of work takes (s).
WORK_TIME_S = {"research": 0.25, "write": 0.2, "code": 0.15}

#: What the researchers "find", by topic (anything else gets a generic finding).
FINDINGS = {
    "redis functions": "A Redis Function runs atomically on the server: no other command runs in between.",
    "streams": "A consumer group's pending-entries list records every delivered, unacknowledged entry.",
    "pub/sub": "Pub/Sub wakes a blocked subscriber within a millisecond of a PUBLISH.",
    "leases": "A lease with a fencing token lets a second worker take over a task safely.",
}

#: How long the writer waits for a researcher's answer to a fact check (s).
FACT_CHECK_TIMEOUT_S = 1.5


#: Liveness TTL of a demo agent (ms): a killed agent lapses this long after its last heartbeat.
AGENT_TTL_MS = 3_000

#: How often the demo's agents run the reaper (ms), so an expired lease is noticed at once.
REAP_INTERVAL_MS = 250


def _agent(client: Client, role: str) -> Agent:
    """An agent with the demo's short liveness and reaper interval (its id comes from --agent-id)."""
    return Agent(
        client,
        role,
        ttl_ms=AGENT_TTL_MS,
        reap_interval_ms=REAP_INTERVAL_MS,
        grace_period_s=2.0,
        metadata={"role": role, "demo": True},
    )


def finding(topic: str) -> str:
    return FINDINGS.get(topic.lower(), f"{topic}: keep state transitions in one atomic call.")


def researcher(client: Client) -> Agent:
    """research tasks: {"topic"} -> {"topic", "finding", "by"}; answers fact.check, notes credit messages."""
    agent = _agent(client, "researcher")

    @agent.handler("research")
    def research(task: TaskContext) -> dict[str, Any]:
        task.wait_interrupted(WORK_TIME_S["research"])
        topic = str(task.payload["topic"])
        return {"topic": topic, "finding": finding(topic), "by": agent.agent_id}

    @agent.on_message("fact.check")
    def fact_check(message: Message) -> dict[str, Any]:
        return {"topic": message.content["topic"], "confirmed": True, "by": agent.agent_id}

    @agent.on_message("credit")
    def credit(message: Message) -> None:
        logging.getLogger(__name__).info("%s: credited in %s", agent.agent_id, message.content)

    return agent


def writer(client: Client) -> Agent:
    """write tasks: research results in ``inputs`` -> a short article, fact-checked with a researcher."""
    agent = _agent(client, "writer")

    @agent.handler("write")
    def write(task: TaskContext) -> dict[str, Any]:
        research = [value for value in (task.inputs or {}).values() if isinstance(value, dict)]
        if not research:
            raise ValueError("write needs research results as inputs")
        source = research[-1]
        answer = agent.request(
            source["by"], "fact.check", {"topic": source["topic"]}, timeout=FACT_CHECK_TIMEOUT_S
        )
        task.wait_interrupted(WORK_TIME_S["write"])
        title = (task.payload or {}).get("title", "Notes")
        body = " ".join(item["finding"] for item in research)
        return {
            "title": title,
            "article": f"{title}. {body}",
            "sources": sorted({r["by"] for r in research}),
            "fact_checked_by": answer.content["by"],
            "by": agent.agent_id,
        }

    return agent


def coder(client: Client) -> Agent:
    """code tasks: an article in ``inputs`` -> a code example; credits the article's researchers."""
    agent = _agent(client, "coder")

    @agent.handler("code")
    def code(task: TaskContext) -> dict[str, Any]:
        article = next(value for value in (task.inputs or {}).values() if isinstance(value, dict))
        task.wait_interrupted(WORK_TIME_S["code"])
        language = (task.payload or {}).get("language", "python")
        example = "\n".join(
            [
                "import agentfn, redis",
                "client = agentfn.Client(redis.Redis(decode_responses=True))",
                f"task_id = client.submit('research', {{'topic': {article['title']!r}}})",
            ]
        )
        for source in article["sources"]:
            task.client.send(
                agent.agent_id, source, "credit", {"example": task.id, "title": article["title"]}
            )
        return {"language": language, "code": example, "by": agent.agent_id}

    return agent
