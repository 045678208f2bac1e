"""A2A (Agent2Agent) for agentfn, on the official ``a2a-sdk`` (``pip install 'agentfn[a2a]'``).

- ``agentfn a2a``: a gateway that serves a namespace as one A2A agent (:mod:`.gateway`);
- :class:`RemoteAgent`: a remote A2A agent serving a capability in a namespace (:mod:`.remote`).

Importing this package does not import the SDK; ``RemoteAgent`` loads it on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RemoteAgent"]


def __getattr__(name: str) -> Any:
    if name == "RemoteAgent":
        from .remote import RemoteAgent

        return RemoteAgent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
