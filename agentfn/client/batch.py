"""Batch: queue calls of any client method and send them in one round trip.

Every API method funnels through ``_call``; a Batch's ``_call`` queues the FCALL (with the
method's reply parser) instead of sending it, and ``execute()`` writes them all on one pooled
connection, reads the replies, and returns each method's parsed result, in order. Each call
stays its own atomic transition (a batch is not a transaction): one may be refused while the
others succeed.

    batch = agentfn.Batch(client)
    for query in queries:
        batch.submit("web_search", {"q": query})
    task_ids = batch.execute()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import redis

from ..errors import library_error
from .api.base import Parser, build_call
from .client import Client, _ClientBase


class Batch(_ClientBase):
    """The methods of a Client, queued; ``execute()`` sends them in one round trip.

    ``write_to(connection)`` and ``read_from(connection)`` split that round trip in two, so that
    a caller can have several batches in flight on one connection (replies come in order). They
    are the transport, not messaging: ``send`` and ``receive`` queue agentfn_msg_send and
    agentfn_msg_read like every other method of a Batch.
    """

    def __init__(self, client: Client) -> None:
        super().__init__(client.redis, client.namespace, check_library=False)
        self._pool = client.redis.connection_pool
        self._calls: list[tuple[list[Any], Parser | None]] = []

    def __len__(self) -> int:
        return len(self._calls)

    def _call(
        self,
        name: str,
        positional: Sequence[Any],
        options: Mapping[str, Any] | None = None,
        parse: Parser | None = None,
    ) -> Any:
        """Queue the call (the method returns None: its result comes from execute)."""
        command, args = build_call(name, self.root, positional, options)
        self._calls.append(([command, *args], parse))

    def execute(self, *, raise_on_error: bool = True) -> list[Any]:
        """Send the queued calls; each method's result in order.

        With ``raise_on_error=False`` a refused call's exception (e.g. StaleToken) stands in
        its place in the list instead of being raised; the other results are still returned.
        """
        if not self._calls:
            return []
        connection = self._pool.get_connection()
        try:
            self.write_to(connection)
            results = self.read_from(connection)
        finally:
            self._pool.release(connection)
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results

    def write_to(self, connection: redis.Connection) -> None:
        """Write the queued calls on ``connection`` without waiting for the replies."""
        connection.send_packed_command(connection.pack_commands([args for args, _ in self._calls]))

    def read_from(self, connection: redis.Connection) -> list[Any]:
        """Read the replies of the calls ``write_to`` wrote; results as ``execute(raise_on_error=False)``."""
        calls, self._calls = self._calls, []
        results: list[Any] = []
        for _, parse in calls:
            try:
                reply = connection.read_response()
            except redis.ResponseError as error:
                results.append(library_error(str(error)) or error)
                continue
            results.append(self._finish(reply, parse))
        return results
