"""Shared constants: the one source for names, limits and defaults used by Python and Lua.

Everything here that the library needs is rendered into the Lua source by
:mod:`agentfn.render`; nothing is copied by hand into ``lua/``.
"""

from __future__ import annotations

from enum import Enum

#: Name of the Redis Functions library (``FUNCTION LOAD`` / ``FUNCTION LIST``).
LIBRARY_NAME = "agentfn"


class TaskState(str, Enum):
    """Lifecycle state of a task (rendered into Lua as ``STATE``)."""

    QUEUED = "queued"
    """In a capability (or direct) stream, not yet delivered to an agent."""
    DELAYED = "delayed"
    """Waiting for its due time (a delay or a retry backoff) in the delayed set."""
    RUNNING = "running"
    """Claimed by an agent that holds a lease and a fencing token."""
    COMPLETED = "completed"
    """Finished with a result."""
    FAILED = "failed"
    """Finished with an error that the worker marked as not retryable."""
    DEAD = "dead"
    """Out of attempts; its entry is in the dead-letter stream and can be requeued."""
    CANCELED = "canceled"
    """Canceled by a caller; a running worker learns it at its next extend or complete."""


class Priority(str, Enum):
    """Priority of a task: one stream per capability and priority (rendered as ``PRIORITIES``)."""

    HIGH = "high"
    """Claimed before any normal or low task of the same capability."""
    NORMAL = "normal"
    """The default."""
    LOW = "low"
    """Claimed only when no high or normal task of the capability is ready."""


class WorkflowState(str, Enum):
    """Lifecycle state of a workflow (rendered into Lua as ``WF_STATE``)."""

    RUNNING = "running"
    """At least one step is not finished."""
    COMPLETED = "completed"
    """Every step completed."""
    FAILED = "failed"
    """A step failed for good (fail_fast), or finished with failed or skipped steps (continue)."""
    CANCELED = "canceled"
    """Canceled by a caller."""


class StepState(str, Enum):
    """State of one workflow step (rendered into Lua as ``STEP_STATE``)."""

    WAITING = "waiting"
    """Some dependency is not completed yet."""
    QUEUED = "queued"
    """Its task was submitted (queued, delayed or running)."""
    INPUT_REQUIRED = "input-required"
    """Its handler asked for input; it waits for agentfn_wf_signal."""
    COMPLETED = "completed"
    """Its task completed."""
    FAILED = "failed"
    """Its task failed for good (failed or dead)."""
    SKIPPED = "skipped"
    """A dependency failed under the continue policy, so it never ran."""
    CANCELED = "canceled"
    """The workflow was canceled (or failed fast) before it finished."""


class WorkflowPolicy(str, Enum):
    """What a workflow does when a step fails for good (rendered into Lua as ``WF_POLICY``)."""

    FAIL_FAST = "fail_fast"
    """The default: the workflow fails at once and its unfinished steps (and their tasks) are canceled."""
    CONTINUE = "continue"
    """Independent branches go on; the failed step's dependents are skipped; the workflow ends failed."""


#: Limits checked by every function before its first write (rendered as ``LIMITS``).
LIMITS: dict[str, int] = {
    # Longest namespace name; namespaces use [A-Za-z0-9_.-].
    "namespace_length": 64,
    # Longest id (agent, task, workflow, step, idempotency key, message type).
    "id_length": 128,
    # Longest capability name.
    "capability_length": 64,
    # Most capabilities one agent may register.
    "capabilities_per_agent": 32,
    # Largest JSON argument (payload, metadata, result, content, signal value, workflow
    # definition) in bytes: the strict check costs 12-90 ms of Redis time per MiB (ASCII to
    # non-ASCII text; bench/json_check.py), so 64 KiB keeps a call under ~10 ms.
    "json_bytes": 65_536,
    # Largest workflow context document in bytes (a merge decodes and encodes it whole).
    "context_bytes": 65_536,
    # Deepest nesting of arrays and objects in a JSON argument.
    "json_depth": 128,
    # Most JSON values (scalars, arrays, objects) and object keys in the JSON arguments of one
    # call, in all: the strict check costs ~0.35 µs each, so a call stays under ~10 ms whatever
    # the shape (64 KiB of [0,0,...] holds 32,767 values; 64 KiB of records of 24 bytes, 13,650).
    "json_values": 16_384,
    # Longest error text kept for a failed attempt, in bytes (longer text is refused).
    "error_bytes": 8_192,
    # Most tasks one claim (or NEXT) may return.
    "claim_count": 50,
    # Most tasks one agentfn_task_submit_many creates (their payloads json_bytes in all).
    "submit_count": 100,
    # Most attempts one agentfn_task_complete_many ends (an agent's whole concurrency at 100).
    "complete_count": 100,
    # Most steps in one workflow: creating one, or completing the root of a fan-out over all of
    # them, stays within ~10 ms of Redis time (about 35 µs a step).
    "workflow_steps": 150,
    # Largest time value (ms) accepted for a TTL, delay, timeout or retention: 365 days.
    "duration_ms": 31_536_000_000,
    # Most attempts a task may be given.
    "max_attempts": 1_000,
    # Most lapsed agents one sweep removes from the indexes (the rest go at the next sweep); a
    # registry call's sweep also hands back at most this many of their tasks.
    "sweep_batch": 20,
    # Most tasks a deregistering agent hands back at once (any more come back when their leases
    # expire).
    "release_batch": 100,
    # Most delayed tasks one claim or reap promotes.
    "promote_batch": 100,
    # A reap's budget (its largest LIMIT, and the default): the due delayed tasks, expired leases,
    # lapsed agents and their tasks, expired messages, orphaned direct tasks, work streams and
    # stream entries, and dead letters it handles, in all.
    "reap_batch": 150,
    # Most work streams one reap visits through the trim index (trims, deletes when unused).
    "trim_batch": 100,
    # Most messages one read returns or one ack acknowledges.
    "message_batch": 200,
    # Most agents agentfn_agent_find returns (its largest LIMIT).
    "find_count": 500,
    # Most agents one broadcast may reach (more live recipients: refused with LIMIT).
    "broadcast_recipients": 250,
}

#: Defaults for options a caller leaves out (rendered as ``DEFAULTS``).
DEFAULTS: dict[str, int] = {
    # Agent liveness time to live: an agent lapses this long after its last heartbeat.
    "agent_ttl_ms": 30_000,
    # Lease a claimer gets on a task (TIMEOUT_MS).
    "task_timeout_ms": 30_000,
    # Attempts before a task goes to the dead-letter stream.
    "max_attempts": 3,
    # First retry backoff; it doubles with each attempt.
    "backoff_ms": 1_000,
    # Cap on the retry backoff.
    "backoff_max_ms": 60_000,
    # How long finished tasks, workflows and messages are kept: 24 h.
    "retention_ms": 86_400_000,
    # How long a lapsed agent's record is kept (namespace config agent_retention_ms): 24 h.
    "agent_retention_ms": 86_400_000,
    # How long a dead letter (and its task's record) is kept (namespace config
    # dead_retention_ms): 24 h.
    "dead_retention_ms": 86_400_000,
    # How long a direct task waits for its agent once the agent is gone (deregistered, lapsed,
    # or not live at submit) before it is dead-lettered with error 'agent gone' (GRACE_MS).
    "direct_grace_ms": 300_000,
    # Approximate cap on the namespace event stream (XADD MAXLEN ~).
    "events_max": 10_000,
    # Approximate cap on the namespace's delayed-wake stream (XADD MAXLEN ~): only its newest
    # entry matters (it wakes blocked agents when a delayed task becomes the earliest due).
    "delayed_wake_max": 100,
    # Cap on unread messages in one inbox (see docs/PROTOCOL.md, messages).
    "inbox_max": 10_000,
}

#: Name of the single consumer group on every work and inbox stream.
CONSUMER_GROUP = "agentfn"
