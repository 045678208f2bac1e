"""agentfn_version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import ApiBase, as_int, pairs


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
    def from_reply(cls, reply: Any) -> "LibraryInfo":
        fields = pairs(reply)
        return cls(
            library=fields["library"],
            code_sha=fields["code_sha"],
            schema_version=as_int(fields["schema_version"]),
            library_schema_version=as_int(fields["library_schema_version"]),
        )


class MetaApi(ApiBase):
    """The meta function."""

    def version(self) -> LibraryInfo:
        """agentfn_version: the deployed library's version and the namespace's schema."""
        return self._call("agentfn_version", [], parse=LibraryInfo.from_reply)
