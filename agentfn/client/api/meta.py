"""agentfn_version."""

from __future__ import annotations

from ...library.info import LibraryInfo
from .base import ApiBase


class MetaApi(ApiBase):
    """The meta function."""

    def version(self) -> LibraryInfo:
        """agentfn_version: the deployed library's version and the namespace's schema."""
        return self._call("agentfn_version", [], None, LibraryInfo.from_reply)
