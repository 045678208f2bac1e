"""Messages between agents: agentfn_msg_send, _broadcast, _read, _ack, and the blocking helpers.

Every agent has a durable inbox (a stream with one consumer group). A message stays there until
the agent acknowledges it, so a reader that dies before acknowledging gets it again on its next
read. The blocking helpers never poll: they block on the inbox with ``XREAD BLOCK`` from the id
the last read returned, so a message sent in between wakes them at once.

The helpers are written once, as generators of steps (each step a call that returns a value on
:class:`~agentfn.Client` and an awaitable on :class:`~agentfn.AsyncClient`), and driven by a
sync or an asyncio runner.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ... import keys
from ...replies import as_int, as_json, as_text, pairs, xread_entries
from ..blocking import xread_blocking
from ..tracing import traceparent_option
from ..waiting import wait_for_work
from .base import ApiBase, json_text, one_field
from .steps import Step, drive, is_async

#: How long one XREAD BLOCK lasts when the caller waits without a timeout (then it reads and
#: blocks again); BLOCK 0 (forever) would leave a dead server undetected.
UNTIMED_BLOCK_MS = 60_000


@dataclass(frozen=True)
class Message:
    """One message from an inbox."""

    id: str
    """The message id: the inbox stream entry id (``<ms>-<seq>``)."""
    sender: str
    """The id the sender gave as ``from``."""
    to: str
    """The recipient (the inbox owner)."""
    type: str
    content: Any
    """The content, decoded from JSON."""
    reply_to: str | None
    """The id of the message this one answers, or None."""
    sent_ms: int
    """When it was sent, on the server's clock."""
    expires_ms: int
    """When it expires, on the server's clock."""
    redelivered: bool = False
    """True when an earlier read delivered it and it was not acknowledged."""
    traceparent: str | None = None
    """The W3C trace context it was sent with, or None."""
    problem: str | None = None
    """Why the entry is not a well-formed message (content that is not valid JSON, a missing
    or non-numeric field: data written by a raw XADD, or stored before the library checked JSON
    strictly); the fields that could not be read are then None, '' or 0."""

    @classmethod
    def from_fields(cls, message_id: str, to: str, fields: dict[str, Any]) -> Message:
        """A message from its inbox entry's fields (as agentfn_msg_read or XREAD return them);
        a malformed entry still becomes a Message, with ``problem`` saying what is wrong."""
        problems = []

        def read(name: str, parse: Any, default: Any) -> Any:
            try:
                return parse(fields[name])
            except (KeyError, TypeError, ValueError) as error:
                problems.append(
                    f"no {name} field" if isinstance(error, KeyError) else f"bad {name}: {error}"
                )
                return default

        return cls(
            id=message_id,
            sender=read("from", str, ""),
            to=to,
            type=read("type", str, ""),
            content=read("content", as_json, None),
            reply_to=fields.get("reply_to") or None,
            sent_ms=read("sent_ms", as_int, 0),
            expires_ms=read("expires_ms", as_int, 0),
            redelivered=fields.get("redelivered") in ("1", 1, b"1"),
            problem="; ".join(problems) or None,
            traceparent=fields.get("traceparent") or None,
        )

    @classmethod
    def from_reply(cls, reply: Any) -> Message:
        fields = pairs(reply)
        return cls.from_fields(fields["id"], fields["to"], fields)


@dataclass(frozen=True)
class InboxRead:
    """What agentfn_msg_read returns: the messages, and where to block when there are none."""

    messages: list[Message]
    wait_stream: str
    """The inbox key to block on: ``XREAD BLOCK <ms> STREAMS <wait_stream> <wait_id>``."""
    wait_id: str
    """The inbox's newest id at the read (0-0 when empty): any message sent later has a larger id."""

    @property
    def wait_streams(self) -> dict[str, str]:
        """``{wait_stream: wait_id}``, the shape :func:`agentfn.waiting.wait_for_work` takes."""
        return {self.wait_stream: self.wait_id}

    @classmethod
    def from_reply(cls, reply: Any) -> InboxRead:
        fields = pairs(reply)
        wait_stream, wait_id = fields["wait"]
        return cls([Message.from_reply(item) for item in fields["messages"]], wait_stream, wait_id)


class Broadcast(dict[str, str]):
    """Who a broadcast reached: agent id -> message id, in liveness-deadline order.

    ``full`` names the live agents that got nothing because their inbox was full.
    """

    full: tuple[str, ...]

    def __init__(self, reached: Iterable[tuple[str, str]] = (), full: Iterable[str] = ()) -> None:
        super().__init__(reached)
        self.full = tuple(full)

    @classmethod
    def from_reply(cls, reply: Any) -> Broadcast:
        fields = pairs(reply)
        reached = fields["reached"]
        return cls(zip(reached[0::2], reached[1::2], strict=True), fields["full"])


def _messages(reply: Any) -> list[Message]:
    return InboxRead.from_reply(reply).messages


def _read_options(count: int, ack: Sequence[str]) -> dict[str, Any]:
    if isinstance(ack, str):
        raise TypeError("ack is a sequence of message ids, not one string")
    return {"COUNT": count, "ACK": ",".join(ack) or None}


def _block_ms(deadline: float | None) -> int | None:
    """XREAD BLOCK milliseconds until a monotonic deadline (a chunk for None), None when past."""
    if deadline is None:
        return UNTIMED_BLOCK_MS
    remaining = deadline - time.monotonic()
    return max(1, math.ceil(remaining * 1000)) if remaining > 0 else None


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _receive_steps(
    api: MessagesApi,
    agent_id: str,
    timeout: float | None,
    count: int,
    ack: Sequence[str],
    secret: str,
) -> Generator[Step, Any, list[Message]]:
    deadline = _deadline(timeout)
    while True:
        read: InboxRead = yield lambda: api.read_inbox(agent_id, count, ack=ack, secret=secret)
        ack = ()
        block = _block_ms(deadline)
        if read.messages or block is None:
            return read.messages
        yield lambda: wait_for_work(api.redis, read, block)


def request_ttl_ms(timeout: float, ttl_ms: int | None) -> int:
    """A request's time to live: ``ttl_ms``, else the wait (it expires when its requester stops waiting)."""
    return ttl_ms or max(1, math.ceil(timeout * 1000))


def no_reply(to: str, request_id: str, timeout: float) -> TimeoutError:
    """The error of a request whose reply did not come in time."""
    return TimeoutError(f"no reply from {to} to message {request_id} within {timeout} s")


def _request_steps(
    api: MessagesApi,
    from_agent: str,
    to: str,
    type: str,
    content: Any,
    timeout: float,
    ttl_ms: int | None,
    allow_unregistered: bool,
    secret: str,
) -> Generator[Step, Any, Message]:
    inbox = keys.inbox(api.namespace, from_agent)
    newest = yield lambda: api.redis.execute_command("XREVRANGE", inbox, "+", "-", "COUNT", 1)
    last_id = as_text(newest[0][0]) if newest else "0-0"
    request_id: str = yield lambda: api.send(
        from_agent,
        to,
        type,
        content,
        ttl_ms=request_ttl_ms(timeout, ttl_ms),
        allow_unregistered=allow_unregistered,
    )
    deadline = _deadline(timeout)
    while (block := _block_ms(deadline)) is not None:
        reply = yield lambda: xread_blocking(api.redis, {inbox: last_id}, block, 100)
        for entry_id, fields in xread_entries(reply):
            last_id = entry_id
            if fields.get("reply_to") == request_id:
                yield lambda: api.ack(from_agent, entry_id, secret=secret)
                return Message.from_fields(entry_id, from_agent, fields)
    raise no_reply(to, request_id, timeout)


def _iterate_sync(
    api: MessagesApi, agent_id: str, count: int, timeout: float | None, secret: str
) -> Iterator[Message]:
    while batch := api.receive(agent_id, timeout, count=count, secret=secret):
        for message in batch:
            yield message
            api.ack(agent_id, message.id, secret=secret)


async def _iterate_async(
    api: MessagesApi, agent_id: str, count: int, timeout: float | None, secret: str
) -> AsyncIterator[Message]:
    while batch := await api.receive(agent_id, timeout, count=count, secret=secret):  # type: ignore[misc]
        for message in batch:
            yield message
            await api.ack(agent_id, message.id, secret=secret)  # type: ignore[misc]


class MessagesApi(ApiBase):
    """Messaging methods, and blocking helpers that work on Client and AsyncClient alike."""

    redis: Any
    namespace: str

    def send(
        self,
        from_agent: str,
        to: str,
        type: str,
        content: Any,
        *,
        reply_to: str | None = None,
        ttl_ms: int | None = None,
        allow_unregistered: bool = False,
        traceparent: str | None = None,
    ) -> str:
        """agentfn_msg_send: put a message (any JSON value) in ``to``'s inbox; returns its id.

        NotFound when ``to`` was never registered (unless allow_unregistered), LimitExceeded when
        its inbox is full. ``traceparent``: the W3C trace context its handler's span is a child
        of; by default the current OpenTelemetry span's, when there is one.
        """
        return self._call(
            "agentfn_msg_send",
            [from_agent, to, type, json_text(content)],
            {
                "REPLY_TO": reply_to,
                "TTL_MS": ttl_ms,
                "ALLOW_UNREGISTERED": allow_unregistered or None,
                "TRACEPARENT": traceparent_option(traceparent),
            },
            one_field("id"),
        )

    def broadcast(
        self,
        from_agent: str,
        type: str,
        content: Any,
        *,
        capability: str | None = None,
        ttl_ms: int | None = None,
        traceparent: str | None = None,
    ) -> Broadcast:
        """agentfn_msg_broadcast: one message to every live agent with ``capability`` (all when None).

        Returns agent id -> message id for each agent reached (the sender is left out); the
        result's ``full`` names live agents whose inbox was full. ``traceparent`` as for send.
        """
        return self._call(
            "agentfn_msg_broadcast",
            [from_agent, capability or "*", type, json_text(content)],
            {"TTL_MS": ttl_ms, "TRACEPARENT": traceparent_option(traceparent)},
            Broadcast.from_reply,
        )

    def read_inbox(
        self,
        agent_id: str,
        count: int = 10,
        *,
        ack: Sequence[str] = (),
        secret: str | None = None,
    ) -> InboxRead:
        """agentfn_msg_read: unacknowledged messages first, then new ones, with the wait position.

        ``ack``: ids of handled messages to acknowledge first, in the same round trip.
        ``secret``: the agent's (registered) secret, by default the one this client registered
        it with, as for every method that reads or acknowledges an inbox.
        """
        return self._call(
            "agentfn_msg_read",
            [agent_id, self._agent_secret(agent_id, secret)],
            _read_options(count, ack),
            InboxRead.from_reply,
        )

    def read_messages(
        self,
        agent_id: str,
        count: int = 10,
        *,
        ack: Sequence[str] = (),
        secret: str | None = None,
    ) -> list[Message]:
        """agentfn_msg_read: up to ``count`` messages; each comes back until it is acknowledged."""
        return self._call(
            "agentfn_msg_read",
            [agent_id, self._agent_secret(agent_id, secret)],
            _read_options(count, ack),
            _messages,
        )

    def ack(self, agent_id: str, *message_ids: str, secret: str | None = None) -> int:
        """agentfn_msg_ack: take messages out of the inbox for good; returns how many were still in it."""
        if not message_ids:
            raise TypeError("ack needs at least one message id")
        return self._call(
            "agentfn_msg_ack",
            [agent_id, self._agent_secret(agent_id, secret), ",".join(message_ids)],
            None,
            one_field("removed", as_int),
        )

    def receive(
        self,
        agent_id: str,
        timeout: float | None,
        *,
        count: int = 10,
        ack: Sequence[str] = (),
        secret: str | None = None,
    ) -> list[Message]:
        """Up to ``count`` messages, blocking (XREAD BLOCK, no polling) up to ``timeout`` seconds
        (None: until one comes) while the inbox has none; [] on timeout. Acknowledge what you
        handle: with ack() or, in the same round trip as the next read, with ``ack``.
        """
        secret = self._agent_secret(agent_id, secret)
        return drive(self.redis, _receive_steps(self, agent_id, timeout, count, ack, secret))

    def messages(
        self,
        agent_id: str,
        *,
        count: int = 10,
        timeout: float | None = None,
        secret: str | None = None,
    ) -> Iterator[Message]:
        """Iterate over messages as they arrive (``async for`` on AsyncClient).

        Each message is acknowledged when the loop asks for the next one: leave the loop
        (break, exception) and the message in hand, and any others read with it, stay
        unacknowledged and come back on the next read. The iteration ends when no message
        came for ``timeout`` seconds (None: never).
        """
        secret = self._agent_secret(agent_id, secret)
        if is_async(self.redis):
            return _iterate_async(self, agent_id, count, timeout, secret)  # type: ignore[return-value]
        return _iterate_sync(self, agent_id, count, timeout, secret)

    def request(
        self,
        from_agent: str,
        to: str,
        type: str,
        content: Any,
        timeout: float,
        *,
        ttl_ms: int | None = None,
        allow_unregistered: bool = False,
        secret: str | None = None,
    ) -> Message:
        """Send a request and wait for its reply; raises TimeoutError after ``timeout`` seconds.

        The reply is the first message in ``from_agent``'s inbox whose reply_to is the request's
        id (the responder calls ``send(..., reply_to=request.id)``); it is acknowledged and
        returned. Other messages are left untouched for the inbox's normal reader, and so is a
        reply that comes after the timeout. The request expires when the wait ends (ttl_ms
        overrides that).

        While an :class:`agentfn.Agent` with message handlers serves ``from_agent``, its mailroom
        reads that inbox and takes the replies: request through ``agent.request()`` then.
        ``from_agent`` must be registered: acknowledging the reply takes its secret (``secret``,
        by default the one this client registered it with).
        """
        secret = self._agent_secret(from_agent, secret)
        return drive(
            self.redis,
            _request_steps(
                self, from_agent, to, type, content, timeout, ttl_ms, allow_unregistered, secret
            ),
        )
