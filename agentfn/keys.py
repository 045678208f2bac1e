"""Key names: the only Python module that builds them (lua/includes/keys.lua builds them in Lua).

Only the keys Python reads or writes have a builder here; docs/ARCHITECTURE.md lists the whole
keyspace.

Every key of a namespace starts with ``agentfn:{<ns>}`` (the *root*); the hash tag keeps a
namespace in one cluster slot. Functions receive the root as ``KEYS[1]`` and derive the rest.
"""

from __future__ import annotations

import os
import re

from .constants import LIMITS

#: Characters allowed in a namespace name.
NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")

#: Families of per-id keys (``<root>:<family>:<id>...``): agent records (and their task sets),
#: capability and direct work streams, inboxes, workflows (and their sub-keys).
FAMILIES = frozenset({"agent", "queue", "direct", "inbox", "wf"})


#: The environment variable naming the namespace when none is given explicitly.
NAMESPACE_VARIABLE = "AGENTFN_NAMESPACE"


def resolve_namespace(namespace: str | None = None) -> str:
    """The one rule everywhere (Client, AsyncClient, deploy, migrate, the CLI): an explicit
    namespace wins, else $AGENTFN_NAMESPACE, else ``default``."""
    return namespace or os.environ.get(NAMESPACE_VARIABLE) or "default"


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


def prefix(namespace: str, family: str) -> str:
    """What every key of one family of per-id keys starts with (``agent``, ``queue``, ``direct``,
    ``inbox``, ``wf``): to read an id back from a key name."""
    if family not in FAMILIES:
        raise ValueError(f"no key family {family!r}")
    return f"{root(namespace)}:{family}:"


def agent(namespace: str, agent_id: str) -> str:
    """Hash: one agent's record."""
    return prefix(namespace, "agent") + agent_id


def workflow(namespace: str, workflow_id: str) -> str:
    """Hash: one workflow's record."""
    return prefix(namespace, "wf") + workflow_id


def task(namespace: str, task_id: str) -> str:
    """Hash: one task's record."""
    return f"{root(namespace)}:task:{task_id}"


def queue(namespace: str, capability: str, priority: str) -> str:
    """Stream: work for one capability and priority (consumer group ``agentfn``)."""
    return f"{prefix(namespace, 'queue')}{capability}:{priority}"


def streams(namespace: str) -> str:
    """Set: the keys of the namespace's work streams (queue and direct), as the library creates
    them (agentfn status reads it instead of scanning)."""
    return f"{root(namespace)}:streams"


def delayed(namespace: str) -> str:
    """Sorted set: ids of delayed tasks (a delay or a retry backoff), scored by due time (ms)."""
    return f"{root(namespace)}:delayed"


def leases(namespace: str) -> str:
    """Sorted set: ids of running tasks, scored by lease deadline (ms)."""
    return f"{root(namespace)}:leases"


def agents(namespace: str) -> str:
    """Sorted set: ids of the live agents, scored by liveness deadline (ms)."""
    return f"{root(namespace)}:agents"


def lapsed(namespace: str) -> str:
    """Sorted set: ids of the lapsed agents whose record is kept, scored by its expiry (ms)."""
    return f"{root(namespace)}:lapsed"


def dead_letters(namespace: str) -> str:
    """Stream: tasks out of attempts, with their error history."""
    return f"{root(namespace)}:dead"


def events(namespace: str) -> str:
    """Stream: every transition of the namespace, capped."""
    return f"{root(namespace)}:events"


def inbox(namespace: str, agent_id: str) -> str:
    """Stream: one agent's message inbox (consumer group ``agentfn``)."""
    return prefix(namespace, "inbox") + agent_id


def message_expiry(namespace: str) -> str:
    """Sorted set: ``<agent_id> <message_id>`` of every inbox message, scored by its expiry (ms)."""
    return f"{root(namespace)}:msg-expiry"


def inboxes(namespace: str) -> str:
    """Sorted set: ids of the agents that have an inbox, scored by the inbox key's expiry (ms)."""
    return f"{root(namespace)}:inboxes"


def workflows(namespace: str, state: str) -> str:
    """Sorted set: ids of the workflows in one state, scored by creation time (ms)."""
    return f"{root(namespace)}:workflows:{state}"


def workflow_expiry(namespace: str) -> str:
    """Sorted set: ``<state> <workflow_id>`` of every finished workflow, scored by its expiry (ms)."""
    return f"{root(namespace)}:wf-expiry"


def notify_channel(namespace: str, topic: str) -> str:
    """Pub/Sub channel for notifications (``wf:<id>``, ``inbox:<agent>``, ``events``)."""
    return f"{root(namespace)}:notify:{topic}"
