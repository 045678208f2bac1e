"""The agent registry: agentfn_agent_register, _heartbeat, _deregister, agentfn_agent_find."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


class RegistryApi(ApiBase):
    """Agent registry methods."""

    def agent_register(
        self,
        agent_id: str,
        capabilities: Sequence[str] = (),
        *,
        ttl_ms: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> AgentInfo:
        """agentfn_agent_register: register (or re-register) an agent with its capabilities."""
        if isinstance(capabilities, str):
            raise TypeError("capabilities is a sequence of names, not one string")
        return self._call(
            "agentfn_agent_register",
            [agent_id, ",".join(capabilities)],
            {"TTL_MS": ttl_ms, "METADATA": metadata},
            AgentInfo.from_reply,
        )

    def agent_heartbeat(self, agent_id: str, *, ttl_ms: int | None = None) -> AgentInfo:
        """agentfn_agent_heartbeat: extend a live agent's liveness (AgentLapsed when it lapsed)."""
        return self._call(
            "agentfn_agent_heartbeat", [agent_id], {"TTL_MS": ttl_ms}, AgentInfo.from_reply
        )

    def agent_deregister(self, agent_id: str) -> int:
        """agentfn_agent_deregister: remove an agent; returns how many of its tasks were handed back."""
        return self._call(
            "agentfn_agent_deregister", [agent_id], None, one_field("released", as_int)
        )

    def agent_find(
        self, capability: str | None = None, *, limit: int | None = None
    ) -> list[AgentInfo]:
        """agentfn_agent_find: live agents with a capability (every live agent when None)."""
        return self._call("agentfn_agent_find", [capability or "*"], {"LIMIT": limit}, _agent_list)
