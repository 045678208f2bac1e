"""Claim tokens and a wrong secret for the raw-FCALL contract tests (protocol 3.0); each agent's
test secret is helpers.secret_of."""

from __future__ import annotations

import hashlib

from .helpers import secret_of

#: A secret of the right form that no test agent registers with: DENIED wherever it is tried.
WRONG_SECRET = "w" * 32


def claim_token(key: str, task_id: str, attempt: int) -> str:
    """The token a claim returns for a task's attempt: <attempt>-sha1(key:task_id:attempt), the key
    being the claimer's secret (or, for a task claimed by complete/fail NEXT, the token presented)."""
    digest = hashlib.sha1(f"{key}:{task_id}:{attempt}".encode()).hexdigest()
    return f"{attempt}-{digest}"


def token_of(task_id: str, attempt: int, agent_id: str = "a1") -> str:
    """The token of the attempt that agent_id's own claim (with its test secret) took."""
    return claim_token(secret_of(agent_id), task_id, attempt)
