"""The library on every node of a deployment: what each holds, compared with the rendered code.

On a plain server there is one node; on a Redis Cluster every primary and replica is read with
``FUNCTION LIST LIBRARYNAME agentfn WITHCODE`` (a replica gets its primary's functions by
replication, so only primaries are loaded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import redis
import redis.cluster

from ..replies import decode_reply
from .render import RenderedLibrary

LIBRARY_NAME = "agentfn"
_VERSION = re.compile(r"^local LIBRARY_VERSION = '([^']*)'", re.MULTILINE)
_CODE_SHA = re.compile(r"^local CODE_SHA = '([0-9a-f]*)'", re.MULTILINE)


@dataclass
class NodeLibrary:
    """What one node holds."""

    address: str
    role: str  # "primary" or "replica"
    version: str | None  # None: no agentfn library on the node
    code_sha: str | None
    loaded: bool = False  # deploy loaded it on this node just now

    def matches(self, library: RenderedLibrary) -> bool:
        return self.code_sha == library.code_sha

    def line(self, code_sha: str) -> str:
        """One line for a terminal, comparing with the library whose sha is ``code_sha``."""
        if self.version is None:
            state = "MISSING (no agentfn library)"
        elif self.code_sha != code_sha:
            state = f"DIFFERS: agentfn {self.version}, code sha {(self.code_sha or '?')[:12]}"
        else:
            state = ("loaded" if self.loaded else "up to date") + f": agentfn {self.version}"
        return f"{self.address} {self.role}: {state}"


def cluster_nodes(cluster: redis.cluster.RedisCluster) -> list[tuple[str, str, str]]:
    """(node id, host:port, role) of every live node, as CLUSTER NODES on any node lists them
    (a primary that serves no slot yet, e.g. one just added, is included)."""
    text = _ask_any_node(cluster, "CLUSTER", "NODES")
    if isinstance(text, bytes):
        text = text.decode()
    if isinstance(text, dict):  # redis-py may parse it: {address: {node_id, flags...}}
        return sorted(
            (
                info["node_id"],
                address.split("@")[0],
                "replica" if "slave" in info["flags"] else "primary",
            )
            for address, info in text.items()
            if "fail" not in info["flags"] and "noaddr" not in info["flags"]
        )
    nodes = []
    for line in text.splitlines():
        node_id, address, flags = line.split()[:3]
        if "fail" in flags.split(",") or "noaddr" in flags:
            continue
        nodes.append((node_id, address.split("@")[0], "replica" if "slave" in flags else "primary"))
    return sorted(nodes)


def _ask_any_node(cluster: redis.cluster.RedisCluster, *command: Any) -> Any:
    """The reply of the first node that answers (the default node may be the one that died)."""
    error: Exception | None = None
    for node in [cluster.get_default_node(), *cluster.get_nodes()]:
        if node is None or node.redis_connection is None:
            continue
        try:
            return node.redis_connection.execute_command(*command)
        except redis.ConnectionError as failed:
            error = failed
    raise error or redis.ConnectionError("no cluster node answers")


def node_servers(connection: Any) -> list[tuple[str, str, redis.Redis]]:
    """(address, role, redis.Redis) of every node: the server itself, or each cluster node."""
    if not isinstance(connection, redis.cluster.RedisCluster):
        kwargs = connection.connection_pool.connection_kwargs
        return [(f"{kwargs.get('host')}:{kwargs.get('port')}", "primary", connection)]
    manager = connection.nodes_manager
    servers = []
    for role_wanted in ("primary", "replica"):
        for _, address, role in cluster_nodes(connection):
            if role != role_wanted:
                continue
            node = connection.get_node(node_name=address)
            if node is not None and node.redis_connection is not None:
                server = node.redis_connection
            else:
                host, _, port = address.rpartition(":")
                server = manager.create_redis_node(host, int(port), **manager.connection_kwargs)
            servers.append((address, role, server))
    return servers


def read_node(address: str, role: str, server: redis.Redis) -> NodeLibrary:
    """What the agentfn library on one node is (version and code sha read from its code)."""
    reply = server.execute_command("FUNCTION", "LIST", "LIBRARYNAME", LIBRARY_NAME, "WITHCODE")
    for entry in reply:
        flat = (
            [item for pair in entry.items() for item in pair] if isinstance(entry, dict) else entry
        )
        flat = decode_reply(flat)
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        if fields.get("library_name") == LIBRARY_NAME:
            code = fields.get("library_code") or ""
            version, sha = _VERSION.search(code), _CODE_SHA.search(code)
            return NodeLibrary(
                address, role, version[1] if version else "?", sha[1] if sha else None
            )
    return NodeLibrary(address, role, None, None)
