"""Agent secrets for the raw-FCALL contract tests (protocol 3.0: agent_id, secret, ...)."""

from __future__ import annotations

import hashlib

#: A secret of the right form that no test agent registers with: DENIED wherever it is tried.
WRONG_SECRET = "w" * 32


def secret_of(agent_id: str) -> str:
    """A test agent's secret: fixed per id (32 hex digits), so that a test keeps no bookkeeping and
    two agents never share one."""
    return hashlib.sha256(agent_id.encode()).hexdigest()[:32]
