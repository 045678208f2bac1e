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

import time
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from ..errors import NotReplicated
from .api.base import Parser, build_call
from .blocking import checkout
from .client import Client, _ClientBase, _translate
from .routing import Retries, not_run


class Batch(_ClientBase):
    """The methods of a Client, queued; ``execute()`` sends them in one round trip.

    ``write_to(connection)`` and ``read_from(connection)`` split that round trip in two, so that
    a caller can have several batches in flight on one connection (replies come in order). They
    are the transport, not messaging: ``send`` and ``receive`` queue agentfn_msg_send and
    agentfn_msg_read like every other method of a Batch.
    """

    def __init__(self, client: Client) -> None:
        super().__init__(client.route, client.namespace, check_library=False)
        self.agent_secrets = client.agent_secrets
        self._waits = False
        self.replication_error: NotReplicated | None = None
        """Set by receive when the durability option is on and too few replicas acknowledged."""
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
        calls = self._calls
        results = self._round_trip()
        retries = Retries(self.route.deadline_s)
        while redirected := [i for i, result in enumerate(results) if not_run(result)]:
            # On a cluster, calls answered MOVED/ASK/TRYAGAIN/CLUSTERDOWN did not run: send only
            # those again (a slot move may start between two calls of one pipeline).
            pause = retries.pause(results[redirected[0]], self.root)
            self.route.reroute()
            if pause:
                time.sleep(pause)
            self._calls = [calls[i] for i in redirected]
            for index, result in zip(redirected, self._round_trip(), strict=True):
                results[index] = result
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
            if self.replication_error is not None:
                raise self.replication_error
        return results

    def _round_trip(self) -> list[Any]:
        pool = self.redis.connection_pool
        connection = checkout(pool, "FCALL")
        try:
            self.write_to(connection)
            return self.read_from(connection)
        except BaseException:
            # Cut short (a reply that did not parse, an interrupt...): replies may be unread,
            # and the pool would hand them to the connection's next caller as its own.
            connection.disconnect()
            raise
        finally:
            pool.release(connection)

    def write_to(self, connection: redis.Connection) -> None:
        """Write the queued calls on ``connection`` without waiting for the replies."""
        commands = [args for args, _ in self._calls]
        durability = self.route.durability
        self._waits = durability is not None and any(args[0] == "FCALL" for args in commands)
        if durability is not None and self._waits:
            commands.append(durability.wait_command())
        connection.send_packed_command(connection.pack_commands(commands))

    def read_from(self, connection: redis.Connection) -> list[Any]:
        """Read the replies of the calls ``write_to`` wrote; results as ``execute(raise_on_error=False)``."""
        calls, self._calls = self._calls, []
        results: list[Any] = []
        for command, parse in calls:
            try:
                reply = connection.read_response()
            except redis.ResponseError as error:
                results.append(_translate(error, self, command[1]))
                continue
            results.append(self._finish(reply, parse))
        self.replication_error = None
        if self._waits and self.route.durability is not None:
            try:
                self.route.durability.check(connection.read_response(), self.route.address)
            except NotReplicated as error:
                self.replication_error = error
        return results
