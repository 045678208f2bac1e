"""Live updates: one hub per namespace reads the event stream and pushes fresh fragments.

A hub blocks in XREAD on the namespace's event stream (the stream every transition appends to,
so nothing is missed between two reads). After new events, and at least every TICK_S while a
browser watches (liveness deadlines move without events), it re-renders each view that some
browser has open, once for all the tabs on it, and queues to each tab the fragments that
changed since it last got them. Redis sees one blocked reader per namespace and one read per
view and burst, however many tabs are open.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio

from .. import keys
from ..client.blocking import xread_blocking
from ..replies import range_entries, xread_entries
from .activity import WINDOW_MS, Activity

log = logging.getLogger(__name__)

#: Longest wait for events before the open views are re-rendered anyway (s).
TICK_S = 2.0

#: Shortest time between two renders of the same views (s): a burst of events makes one render.
MIN_RENDER_INTERVAL_S = 0.1

#: Events read at once.
READ_COUNT = 1_000

#: Messages a tab may have waiting before it is dropped (it reconnects and starts afresh).
MAX_QUEUED = 200

#: Renders a view: (namespace, view) -> {fragment id: html}.
RenderFragments = Callable[[str, str], Awaitable[dict[str, str]]]
#: Renders event rows: (namespace, [(entry id, fields)]) -> html.
RenderEvents = Callable[[str, list[tuple[str, dict[str, str]]]], Awaitable[str]]


@dataclass(eq=False)
class Subscriber:
    """One browser tab on one view."""

    view: str
    queue: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)
    sent: dict[str, str] = field(default_factory=dict)
    """Fragment id -> the html this tab has now."""
    dropped: bool = False

    def push(self, kind: str, data: str) -> None:
        if self.queue.qsize() >= MAX_QUEUED:
            self.dropped = True
            return
        self.queue.put_nowait((kind, data))

    def offer(self, fragments: dict[str, str]) -> None:
        """Queue the fragments that differ from what the tab shows."""
        changed = {name: html for name, html in fragments.items() if self.sent.get(name) != html}
        if changed:
            self.sent.update(changed)
            self.push("fragments", json.dumps(changed))


class Hub:
    """The live feed of one namespace."""

    def __init__(
        self,
        namespace: str,
        redis_client: redis.asyncio.Redis,
        render: RenderFragments,
        render_events: RenderEvents,
    ) -> None:
        self.namespace = namespace
        self.redis = redis_client
        self.render = render
        self.render_events = render_events
        self.activity = Activity()
        self.subscribers: set[Subscriber] = set()
        self.renders = 0
        """Renders so far (each covers every open view)."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(
            self._run(), name=f"agentfn-dashboard-hub-{self.namespace}"
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def subscribe(self, view: str) -> Subscriber:
        subscriber = Subscriber(view)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    async def _bootstrap(self) -> str:
        """Fill the activity window from the stream's last minute; the id to read from next."""
        stream = keys.events(self.namespace)
        seconds, micros = await self.redis.time()
        now = int(seconds) * 1000 + int(micros) // 1000
        entries = range_entries(await self.redis.xrange(stream, min=str(max(now - WINDOW_MS, 0))))
        self.activity.add(entries)
        if entries:
            return entries[-1][0]
        newest = range_entries(await self.redis.xrevrange(stream, count=1))
        return newest[0][0] if newest else "0-0"

    async def _run(self) -> None:
        stream = keys.events(self.namespace)
        while True:
            try:
                last_id = await self._bootstrap()
                await self._follow(stream, last_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis went away, or a render failed: log it, then start over
                log.exception("live updates of namespace %s failed; retrying", self.namespace)
                await asyncio.sleep(1.0)

    async def _follow(self, stream: str, last_id: str) -> None:
        pending: list[tuple[str, dict[str, str]]] = []
        last_render = 0.0
        while True:
            waited = time.monotonic() - last_render
            block_s = max(MIN_RENDER_INTERVAL_S - waited, 0.001) if pending else TICK_S
            reply = await xread_blocking(
                self.redis, {stream: last_id}, max(int(block_s * 1000), 1), READ_COUNT
            )
            entries = xread_entries(reply)
            if entries:
                last_id = entries[-1][0]
                self.activity.add(entries)
                pending.extend(entries)
                if time.monotonic() - last_render < MIN_RENDER_INTERVAL_S:
                    continue
            if not self.subscribers:
                pending.clear()
                continue
            await self._publish(pending)
            pending = []
            last_render = time.monotonic()

    async def _publish(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Render each open view once and offer it to the tabs on it; send new event rows."""
        self.subscribers = {subscriber for subscriber in self.subscribers if not subscriber.dropped}
        views = {subscriber.view for subscriber in self.subscribers}
        rendered = dict(
            zip(
                views,
                await asyncio.gather(*(self.render(self.namespace, view) for view in views)),
                strict=True,
            )
        )
        rows = (
            await self.render_events(self.namespace, entries)
            if entries and "events" in views
            else ""
        )
        self.renders += 1
        for subscriber in self.subscribers:
            subscriber.offer(rendered[subscriber.view])
            if rows and subscriber.view == "events":
                subscriber.push("events", json.dumps({"html": rows, "last": entries[-1][0]}))


_ids = itertools.count(1)


def sse(kind: str, data: str) -> str:
    """One server-sent event (``data`` holds no newline: it is JSON)."""
    return f"id: {next(_ids)}\nevent: {kind}\ndata: {data}\n\n"


async def stream_events(
    hub: Hub, subscriber: Subscriber, first: list[tuple[str, str]], keepalive_s: float = 15.0
) -> Any:
    """The body of a tab's event stream: what it missed, then whatever the hub queues for it."""
    try:
        yield "retry: 1000\n\n"
        for kind, data in first:
            yield sse(kind, data)
        while not subscriber.dropped:
            try:
                kind, data = await asyncio.wait_for(subscriber.queue.get(), keepalive_s)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            yield sse(kind, data)
    finally:
        hub.unsubscribe(subscriber)
