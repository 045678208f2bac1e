"""Raw-FCALL helpers shared by the task test modules."""

from __future__ import annotations

from typing import Any

import redis

from .helpers import ROOT, fcall, pairs, secret_of


def register(r: redis.Redis, agent_id: str, capabilities: str, *options: Any) -> dict[str, Any]:
    """Register with the agent's test secret (helpers.secret_of)."""
    return pairs(
        fcall(r, "agentfn_agent_register", agent_id, secret_of(agent_id), capabilities, *options)
    )


def submit(r: redis.Redis, capability: str, payload: str = "{}", *options: Any) -> dict[str, Any]:
    return pairs(fcall(r, "agentfn_task_submit", capability, payload, *options))


def claim_reply(reply: list[Any]) -> dict[str, Any]:
    """A claim reply with its tasks and wait list decoded to dicts."""
    fields = pairs(reply)
    return {
        "tasks": [pairs(task) for task in fields["tasks"]],
        "wait": pairs(fields["wait"]),
        "next_due_ms": fields["next_due_ms"],
    }


def claim(r: redis.Redis, agent_id: str, *options: Any) -> dict[str, Any]:
    """Claim as the agent (with its test secret)."""
    return claim_reply(fcall(r, "agentfn_task_claim", agent_id, secret_of(agent_id), *options))


def held(r: redis.Redis, agent_id: str) -> list[str]:
    """The ids of the tasks an agent holds: its consumer's pending entries in every work stream."""
    ids = []
    for stream in sorted(r.smembers(f"{ROOT}:streams")):
        if r.exists(stream):
            for pending in r.xpending_range(stream, "agentfn", "-", "+", 1000, agent_id):
                [(_, fields)] = r.xrange(stream, pending["message_id"], pending["message_id"])
                ids.append(fields["task"])
    return sorted(ids)


def claimed_ids(r: redis.Redis, agent_id: str, *options: Any) -> list[str]:
    return [task["id"] for task in claim(r, agent_id, *options)["tasks"]]


def complete(
    r: redis.Redis, task_id: str, token: Any, result: str = '"ok"', *options: Any
) -> dict[str, Any]:
    return pairs(fcall(r, "agentfn_task_complete", task_id, token, result, *options))


def fail(
    r: redis.Redis, task_id: str, token: Any, error: str = "boom", *options: Any
) -> dict[str, Any]:
    return pairs(fcall(r, "agentfn_task_fail", task_id, token, error, *options))


def get(r: redis.Redis, task_id: str) -> dict[str, Any]:
    return pairs(r.execute_command("FCALL_RO", "agentfn_task_get", 1, ROOT, task_id))


def reap(r: redis.Redis, *options: Any) -> dict[str, int]:
    return pairs(fcall(r, "agentfn_reap", *options))
