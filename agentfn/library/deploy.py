"""Versioned deploy: load the library only when its code changed, refuse downgrades, migrate."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.cluster

from .. import keys
from ..errors import DowngradeRefused, LibraryNotReady, MigrationError, is_missing_function
from ..replies import decode_reply
from .info import LibraryInfo, version_tuple
from .migrate import Migration, migrate, schema_version
from .nodes import NodeLibrary, node_servers, read_node
from .render import RenderedLibrary, render_library


@dataclass
class DeployReport:
    """What deploy did."""

    version: str
    code_sha: str
    previous: LibraryInfo | None
    loaded: bool
    migrations: list[Migration] = field(default_factory=list)
    nodes: list[NodeLibrary] = field(default_factory=list)
    """Every node (each primary and replica of a cluster) as read back after loading."""

    def summary(self) -> str:
        """One line for a terminal (on a cluster: and one line per node before it)."""
        if len(self.nodes) > 1:
            lines = [node.line(self.code_sha) for node in self.nodes]
            return "\n".join([*lines, self._line()])
        return self._line()

    def _line(self) -> str:
        parts = []
        if self.loaded:
            before = f" (was {self.previous.library})" if self.previous else ""
            parts.append(f"loaded agentfn {self.version}{before}, code sha {self.code_sha[:12]}")
        if self.migrations:
            parts.append("applied " + ", ".join(m.path.name for m in self.migrations))
        return (
            "; ".join(parts)
            if parts
            else f"up to date: agentfn {self.version}, code sha {self.code_sha[:12]}"
        )


def deployed_library(client: redis.Redis, namespace: str | None = None) -> LibraryInfo | None:
    """What agentfn_version reports, or None when no agentfn library is loaded."""
    namespace = keys.resolve_namespace(namespace)
    try:
        reply = client.execute_command("FCALL_RO", "agentfn_version", 1, keys.root(namespace))
    except redis.ResponseError as error:
        if is_missing_function(error):
            return None
        raise
    return LibraryInfo.from_reply(decode_reply(reply))


def deploy(
    client: redis.Redis,
    namespace: str | None = None,
    *,
    force: bool = False,
    library: RenderedLibrary | None = None,
    migrations_directory: Path | None = None,
) -> DeployReport:
    """Load the library when its code hash differs from the deployed one, then migrate the namespace.

    Refuses (DowngradeRefused) to replace a newer deployed version unless ``force``.
    ``namespace``: else $AGENTFN_NAMESPACE, else ``default`` (keys.resolve_namespace).
    """
    namespace = keys.resolve_namespace(namespace)
    library = library or render_library(migrations=migrations_directory)
    if isinstance(client, redis.cluster.RedisCluster):
        return _deploy_cluster(client, namespace, force, library, migrations_directory)
    current_schema = schema_version(client, namespace)
    if current_schema > library.schema_version:
        raise MigrationError(
            f"namespace {namespace} has schema {current_schema}, newer than this library's "
            f"{library.schema_version}: deploy a newer agentfn"
        )
    previous = deployed_library(client, namespace)
    loaded = False
    if previous is None or previous.code_sha != library.code_sha:
        if (
            previous is not None
            and not force
            and version_tuple(previous.library) > version_tuple(library.version)
        ):
            raise DowngradeRefused(
                f"the deployed agentfn library {previous.library} is newer than {library.version}; "
                "refusing to downgrade (pass --force to replace it anyway)"
            )
        client.execute_command("FUNCTION", "LOAD", "REPLACE", library.source)
        loaded = True
    applied = migrate(client, namespace, migrations_directory)
    return DeployReport(library.version, library.code_sha, previous, loaded, applied)


#: How long deploy waits for replicas to receive a FUNCTION LOAD before reading them (ms).
REPLICA_WAIT_MS = 2_000


def _refuse_downgrade(deployed: NodeLibrary, library: RenderedLibrary) -> None:
    version = deployed.version or "0"
    if version != "?" and version_tuple(version) > version_tuple(library.version):
        raise DowngradeRefused(
            f"{deployed.address} holds agentfn {version}, newer than {library.version}; "
            "refusing to downgrade any node (pass --force to replace it anyway)"
        )


def check_nodes(connection: Any, library: RenderedLibrary | None = None) -> list[NodeLibrary]:
    """Read every node's library (loads nothing)."""
    library = library or render_library()
    return [read_node(*server) for server in node_servers(connection)]


def _deploy_cluster(
    cluster: redis.cluster.RedisCluster,
    namespace: str,
    force: bool,
    library: RenderedLibrary,
    migrations_directory: Path | None,
) -> DeployReport:
    """Load on every primary lacking the exact library (refusing a downgrade on any node before
    loading anywhere), read back every primary and replica, migrate the namespace on its owner."""
    cluster.nodes_manager.initialize()
    servers = node_servers(cluster)
    before = [read_node(*server) for server in servers]
    if not force:
        for node in before:
            if node.version is not None and not node.matches(library):
                _refuse_downgrade(node, library)
    loaded = set()
    for (address, role, server), node in zip(servers, before, strict=True):
        if role == "primary" and not node.matches(library):
            server.execute_command("FUNCTION", "LOAD", "REPLACE", library.source)
            replicas = int(server.info("replication").get("connected_slaves", 0))
            if replicas:
                server.execute_command("WAIT", replicas, REPLICA_WAIT_MS)
            loaded.add(address)
    after = [read_node(*server) for server in servers]
    for node in after:
        node.loaded = node.address in loaded
    missing = [node for node in after if node.role == "primary" and not node.matches(library)]
    if missing:
        raise LibraryNotReady(
            "the library did not land on " + ", ".join(node.address for node in missing)
        )
    owner = cluster.get_node_from_key(keys.root(namespace)).redis_connection
    current_schema = schema_version(owner, namespace)
    if current_schema > library.schema_version:
        raise MigrationError(
            f"namespace {namespace} has schema {current_schema}, newer than this library's "
            f"{library.schema_version}: deploy a newer agentfn"
        )
    previous = next((node for node in before if node.version is not None), None)
    previous_info = (
        None
        if previous is None
        else LibraryInfo(previous.version or "?", previous.code_sha or "", current_schema, 0)
    )
    applied = migrate(owner, namespace, migrations_directory)
    return DeployReport(
        library.version, library.code_sha, previous_info, bool(loaded), applied, after
    )
