"""The agent registry: agentfn_agent_register, _heartbeat, _deregister, agentfn_agent_find.

An agent proves who it is with a secret (protocol 3.0): agent_register generates one unless
given, and the client remembers it (in memory) for the agent's later calls; the library stores
only its SHA-1.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ...replies import as_int, as_json, pairs
from .base import ApiBase, one_field


@dataclass(frozen=True)
class AgentInfo:
    """An agent's record."""

    id: str
    capabilities: tuple[str, ...]
    metadata: dict[str, Any]
    status: str
    """live or lapsed."""
    ttl_ms: int
    registered_ms: int
    heartbeat_ms: int
    expires_ms: int
    """Liveness deadline on the server's clock."""
    secret: str | None = field(default=None, repr=False, compare=False)
    """The agent's secret: set only on agent_register's result (never shown in its repr)."""

    @classmethod
    def from_reply(cls, reply: Any) -> AgentInfo:
        fields = pairs(reply)
        return cls(
            id=fields["id"],
            capabilities=tuple(c for c in fields["capabilities"].split(",") if c),
            metadata=as_json(fields["metadata"], {}),
            status=fields["status"],
            ttl_ms=as_int(fields["ttl_ms"]),
            registered_ms=as_int(fields["registered_ms"]),
            heartbeat_ms=as_int(fields["heartbeat_ms"]),
            expires_ms=as_int(fields["expires_ms"]),
        )


def _agent_list(reply: Any) -> list[AgentInfo]:
    return [AgentInfo.from_reply(item) for item in reply]


def _registered(known: dict[str, str], agent_id: str, secret: str) -> Callable[[Any], AgentInfo]:
    """The parser of a registration's reply: the client remembers the secret (once the library
    accepted it) and the result carries it."""

    def parse(reply: Any) -> AgentInfo:
        known[agent_id] = secret
        return replace(AgentInfo.from_reply(reply), secret=secret)

    return parse


class RegistryApi(ApiBase):
    """Agent registry methods."""

    def agent_register(
        self,
        agent_id: str,
        capabilities: Sequence[str] = (),
        *,
        ttl_ms: int | None = None,
        metadata: dict[str, Any] | None = None,
        secret: str | None = None,
    ) -> AgentInfo:
        """agentfn_agent_register: register (or re-register) an agent with its capabilities.

        ``secret``: the agent's secret (32 to 128 letters, digits, _ -); by default the one this
        client registered it with before, else a new ``secrets.token_hex(16)``. The client
        remembers it for the agent's later calls, and the result's ``secret`` carries it. Denied
        while the agent is live under another secret (until it lapses or is deregistered).
        """
        if isinstance(capabilities, str):
            raise TypeError("capabilities is a sequence of names, not one string")
        if secret is None:
            secret = self.agent_secrets.get(agent_id) or secrets.token_hex(16)
        return self._call(
            "agentfn_agent_register",
            [agent_id, secret, ",".join(capabilities)],
            {"TTL_MS": ttl_ms, "METADATA": metadata},
            _registered(self.agent_secrets, agent_id, secret),
        )

    def agent_heartbeat(
        self, agent_id: str, *, ttl_ms: int | None = None, secret: str | None = None
    ) -> AgentInfo:
        """agentfn_agent_heartbeat: extend a live agent's liveness (AgentLapsed when it lapsed).
        ``secret``: by default the one this client registered it with (as for every agent-side
        method); Denied when it is not the agent's."""
        return self._call(
            "agentfn_agent_heartbeat",
            [agent_id, self._agent_secret(agent_id, secret)],
            {"TTL_MS": ttl_ms},
            AgentInfo.from_reply,
        )

    def agent_deregister(self, agent_id: str, *, secret: str | None = None) -> int:
        """agentfn_agent_deregister: remove an agent; returns how many of its tasks were handed back."""
        return self._call(
            "agentfn_agent_deregister",
            [agent_id, self._agent_secret(agent_id, secret)],
            None,
            one_field("released", as_int),
        )

    def agent_find(
        self, capability: str | None = None, *, limit: int | None = None
    ) -> list[AgentInfo]:
        """agentfn_agent_find: live agents with a capability (every live agent when None)."""
        return self._call("agentfn_agent_find", [capability or "*"], {"LIMIT": limit}, _agent_list)
