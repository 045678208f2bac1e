"""Moving a namespace to another primary of a Redis Cluster: its slot, with the standard sequence.

``move_namespace`` runs what ``redis-cli --cluster reshard`` runs for one slot (SETSLOT IMPORTING
on the target, MIGRATING on the source, MIGRATE of every key in batches, then SETSLOT NODE on
the target, the source and every other primary), after checking that the target holds the exact
library. While the slot moves, every FCALL is answered ASK by the source (the declared root key
``agentfn:{ns}`` never exists, so Redis counts it as moved) and agentfn's clients wait for the
move to end instead of following ASK: no function runs against a half-moved namespace. Other
namespaces whose names hash to the same slot move with it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import redis
import redis.cluster

from .. import keys
from ..library.nodes import cluster_nodes, read_node
from ..library.render import RenderedLibrary, render_library

#: Keys moved by one MIGRATE.
MIGRATE_BATCH = 100

#: MIGRATE's timeout (ms).
MIGRATE_TIMEOUT_MS = 10_000


class MoveRefused(Exception):
    """The move was not started (nothing changed); the message says why."""


@dataclass
class MoveReport:
    namespace: str
    slot: int
    source: str
    target: str
    keys: int

    def summary(self) -> str:
        if self.source == self.target:
            return f"namespace {self.namespace} (slot {self.slot}) is already on {self.target}"
        return (
            f"moved namespace {self.namespace} (slot {self.slot}, {self.keys} keys) "
            f"from {self.source} to {self.target}"
        )


def move_namespace(
    cluster: redis.cluster.RedisCluster,
    namespace: str,
    target_address: str,
    library: RenderedLibrary | None = None,
) -> MoveReport:
    """Move the namespace's slot to the primary at ``target_address`` (host:port)."""
    library = library or render_library()
    root = keys.root(namespace)
    slot = cluster.keyslot(root)
    cluster.nodes_manager.initialize()
    nodes = {address: (node_id, role) for node_id, address, role in cluster_nodes(cluster)}
    if target_address not in nodes or nodes[target_address][1] != "primary":
        raise MoveRefused(f"{target_address} is not a primary of this cluster")
    source_node = cluster.get_node_from_key(root)
    source = source_node.redis_connection
    if source_node.name == target_address:
        return MoveReport(namespace, slot, target_address, target_address, 0)
    manager = cluster.nodes_manager
    host, _, port = target_address.rpartition(":")
    target = manager.create_redis_node(host, int(port), **manager.connection_kwargs)
    held = read_node(target_address, "primary", target)
    if not held.matches(library):
        raise MoveRefused(
            f"{target_address} does not hold agentfn {library.version} "
            f"({'missing' if held.version is None else 'differs'}): run agentfn deploy first"
        )
    source_id, target_id = nodes[source_node.name][0], nodes[target_address][0]
    target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    moved = 0
    while batch := source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, MIGRATE_BATCH):
        source.execute_command(
            "MIGRATE", host, int(port), "", 0, MIGRATE_TIMEOUT_MS, "KEYS", *batch
        )
        moved += len(batch)
    target.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    source.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    for address, (_, role) in nodes.items():
        if role == "primary" and address not in (target_address, source_node.name):
            other_host, _, other_port = address.rpartition(":")
            other = manager.create_redis_node(
                other_host, int(other_port), **manager.connection_kwargs
            )
            # On failure it learns the new owner from the cluster bus.
            with contextlib.suppress(redis.RedisError):
                other.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    cluster.nodes_manager.initialize()
    return MoveReport(namespace, slot, source_node.name, target_address, moved)
