"""Key names: the only Python module that builds them (lua/includes/keys.lua is the Lua twin).

Every key of a namespace starts with ``agentfn:{<ns>}`` (the *root*); the hash tag keeps a
namespace in one cluster slot. Functions receive the root as ``KEYS[1]`` and derive the rest.
"""

from __future__ import annotations

import re

from .constants import LIMITS

#: Characters allowed in a namespace name.
NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")


def validate_namespace(namespace: str) -> str:
    """Return ``namespace`` unchanged, or raise ValueError when it cannot be part of a key."""
    if not namespace or len(namespace) > LIMITS["namespace_length"]:
        raise ValueError(f"namespace must be 1-{LIMITS['namespace_length']} characters")
    if not NAMESPACE_PATTERN.match(namespace):
        raise ValueError("namespace may contain only letters, digits, '_', '.' and '-'")
    return namespace


def root(namespace: str) -> str:
    """The namespace root key, passed as KEYS[1] to every function."""
    return f"agentfn:{{{validate_namespace(namespace)}}}"


def meta(namespace: str) -> str:
    """Hash: schema_version, created_ms and the namespace's id counters."""
    return f"{root(namespace)}:meta"


def migrate_lock(namespace: str) -> str:
    """String: held by the one process applying migrations to the namespace."""
    return f"{root(namespace)}:migrate-lock"


def reap_lock(namespace: str) -> str:
    """String: the agent running the namespace's reaper; SET NX PX <interval>, never released."""
    return f"{root(namespace)}:reap-lock"


def agent(namespace: str, agent_id: str) -> str:
    """Hash: one agent's record."""
    return f"{root(namespace)}:agent:{agent_id}"


def agents_live(namespace: str) -> str:
    """Sorted set: registered agent ids scored by liveness deadline (ms)."""
    return f"{root(namespace)}:agents"


def capability_index(namespace: str, capability: str) -> str:
    """Sorted set: ids of agents with a capability, scored by liveness deadline (ms)."""
    return f"{root(namespace)}:cap:{capability}"


def task(namespace: str, task_id: str) -> str:
    """Hash: one task's record."""
    return f"{root(namespace)}:task:{task_id}"


def queue(namespace: str, capability: str, priority: str) -> str:
    """Stream: work for one capability and priority (consumer group ``agentfn``)."""
    return f"{root(namespace)}:queue:{capability}:{priority}"


def direct_queue(namespace: str, agent_id: str) -> str:
    """Stream: work routed to one agent (``TO agent_id``)."""
    return f"{root(namespace)}:direct:{agent_id}"


def delayed(namespace: str) -> str:
    """Sorted set: ids of delayed tasks (a delay or a retry backoff), scored by due time (ms)."""
    return f"{root(namespace)}:delayed"


def delayed_wake(namespace: str) -> str:
    """Stream: one entry each time a delayed task becomes the earliest due, capped; it wakes
    blocked agents (every claim's wait list has it) so that they block until the new due time."""
    return f"{root(namespace)}:delayed-wake"


def streams(namespace: str) -> str:
    """Set: the keys of the namespace's work streams (queue and direct), for agentfn_reap's trimming."""
    return f"{root(namespace)}:streams"


def leases(namespace: str) -> str:
    """Sorted set: ids of running tasks, scored by lease deadline (ms)."""
    return f"{root(namespace)}:leases"


def idempotency(namespace: str, key: str) -> str:
    """String: the id of the task submitted with an idempotency key."""
    return f"{root(namespace)}:idem:{key}"


def dead_letters(namespace: str) -> str:
    """Stream: tasks out of attempts, with their error history."""
    return f"{root(namespace)}:dead"


def events(namespace: str) -> str:
    """Stream: every transition of the namespace, capped."""
    return f"{root(namespace)}:events"


def inbox(namespace: str, agent_id: str) -> str:
    """Stream: one agent's message inbox (consumer group ``agentfn``)."""
    return f"{root(namespace)}:inbox:{agent_id}"


def message_expiry(namespace: str) -> str:
    """Sorted set: ``<agent_id> <message_id>`` of every inbox message, scored by its expiry (ms)."""
    return f"{root(namespace)}:msg-expiry"


def workflow(namespace: str, workflow_id: str) -> str:
    """Hash: one workflow's record."""
    return f"{root(namespace)}:wf:{workflow_id}"


def workflow_steps(namespace: str, workflow_id: str) -> str:
    """List: a workflow's step ids in definition order."""
    return f"{root(namespace)}:wf:{workflow_id}:steps"


def workflow_step(namespace: str, workflow_id: str, step_id: str) -> str:
    """Hash: one workflow step (definition, state, task, result)."""
    return f"{root(namespace)}:wf:{workflow_id}:step:{step_id}"


def workflow_unmet(namespace: str, workflow_id: str) -> str:
    """Hash: step id -> how many of its dependencies have not completed yet."""
    return f"{root(namespace)}:wf:{workflow_id}:unmet"


def notify_channel(namespace: str, topic: str) -> str:
    """Pub/Sub channel for notifications (``wf:<id>``, ``inbox:<agent>``, ``events``)."""
    return f"{root(namespace)}:notify:{topic}"
