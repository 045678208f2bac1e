"""Batch: queue calls of any client method and send them in one round trip.

Every API method funnels through ``_call``; a Batch's ``_call`` queues the FCALL on a
non-transactional redis-py pipeline instead of sending it, and ``execute()`` sends them all
and returns each method's parsed result, in order. Each call stays its own atomic transition
(a pipeline is not a transaction): one may be refused while the others succeed.

    batch = agentfn.Batch(client)
    for query in queries:
        batch.submit("web_search", {"q": query})
    task_ids = batch.execute()
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import redis

from .api.base import Parser, build_call, decode_reply
from .client import Client, _ClientBase
from .errors import library_error


class Batch(_ClientBase):
    """The methods of a Client, queued; ``execute()`` sends them in one round trip."""

    def __init__(self, client: Client) -> None:
        super().__init__(client.redis, client.namespace, check_library=False)
        self._pipeline = client.redis.pipeline(transaction=False)
        self._parsers: list[Parser | None] = []
        # Replies are text already when the connection decodes them: skip the walk through them.
        self._decoded = bool(client.redis.get_connection_kwargs().get("decode_responses"))

    def __len__(self) -> int:
        return len(self._parsers)

    def _call(
        self,
        name: str,
        positional: Sequence[Any],
        options: Mapping[str, Any] | None = None,
        parse: Parser | None = None,
    ) -> None:
        command, args = build_call(name, self.root, positional, options)
        self._pipeline.execute_command(command, *args)
        self._parsers.append(parse)

    def execute(self, *, raise_on_error: bool = True) -> list[Any]:
        """Send the queued calls; each method's result in order.

        With ``raise_on_error=False`` a refused call's exception (e.g. StaleToken) stands in
        its place in the list instead of being raised; the other results are still returned.
        """
        parsers, self._parsers = self._parsers, []
        if not parsers:
            return []
        replies = self._pipeline.execute(raise_on_error=False)
        results: list[Any] = []
        for reply, parse in zip(replies, parsers):
            if isinstance(reply, redis.ResponseError):
                result: Any = library_error(str(reply)) or reply
            else:
                if not self._decoded:
                    reply = decode_reply(reply)
                result = parse(reply) if parse else reply
            results.append(result)
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results
