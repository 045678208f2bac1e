"""Versioned deploy: load the library only when its code changed, refuse downgrades, migrate."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import redis

from .. import keys
from ..errors import DowngradeRefused, MigrationError, is_missing_function
from ..replies import decode_reply
from .info import LibraryInfo, version_tuple
from .migrate import Migration, migrate, schema_version
from .render import RenderedLibrary, render_library


@dataclass
class DeployReport:
    """What deploy did."""

    version: str
    code_sha: str
    previous: LibraryInfo | None
    loaded: bool
    migrations: list[Migration] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a terminal."""
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
