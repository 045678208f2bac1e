"""What the deployed library reports about itself, and whether it can serve this package."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..replies import as_int, pairs
from ..version import __version__


@dataclass(frozen=True)
class LibraryInfo:
    """What agentfn_version reports."""

    library: str
    """The deployed library's version."""
    code_sha: str
    """sha256 of the deployed library's source."""
    schema_version: int
    """The namespace's schema version (0 when it was never migrated)."""
    library_schema_version: int
    """The schema version the deployed library expects."""

    @classmethod
    def from_reply(cls, reply: Any) -> LibraryInfo:
        fields = pairs(reply)
        return cls(
            library=fields["library"],
            code_sha=fields["code_sha"],
            schema_version=as_int(fields["schema_version"]),
            library_schema_version=as_int(fields["library_schema_version"]),
        )


def version_tuple(version: str) -> tuple[int, ...]:
    """ "1.2.3" as (1, 2, 3), for comparing versions."""
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


def compatibility_problem(
    info: LibraryInfo | None, namespace: str, url: str | None = None
) -> str | None:
    """Why the deployed library cannot serve this package, with the command to run; None if it can.

    ``url`` (shown as given: pass it redacted) goes into the command; else ``<redis-url>``.
    """
    where = url or "<redis-url>"
    deploy = f"run: agentfn deploy --url {where} --namespace {namespace}"
    if info is None:
        return f"the agentfn library is not deployed on {url or 'this Redis'}; {deploy}"
    deployed, ours = version_tuple(info.library), version_tuple(__version__)
    if deployed[:1] < ours[:1]:
        return (
            f"the deployed agentfn library is {info.library}, an older major version than this "
            f"package ({__version__}): the protocol changed; stop the agents of "
            f"{info.library}, then {deploy} (README: Deploying and upgrading)"
        )
    if deployed[:1] > ours[:1]:
        return (
            f"the deployed agentfn library is {info.library}, a newer major version than this "
            f"package ({__version__}): upgrade this package (pip install -U agentfn); deploying "
            f"{__version__} over it (--force) would break every client of {info.library}"
        )
    if deployed < ours:
        return f"the deployed agentfn library {info.library} is older than this package ({__version__}); {deploy}"
    if info.schema_version == 0:
        return (
            f"namespace {namespace} was never migrated (is its name right?); to use it, "
            f"run: agentfn migrate --url {where} --namespace {namespace}"
        )
    if info.schema_version != info.library_schema_version:
        return (
            f"namespace {namespace} has schema {info.schema_version}, the library expects "
            f"{info.library_schema_version}; run: agentfn migrate --url {where} --namespace {namespace}"
        )
    return None
