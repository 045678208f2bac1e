"""The waiter thread of a running agent: blocks in XREAD when the pump has nothing to claim."""

from __future__ import annotations

import logging
import queue
import threading

import redis

from ..client.waiting import BlockingConnection, wait_on_streams
from .recovery import Recovery
from .services import RuntimeServices

log = logging.getLogger("agentfn.agent")

WORK = "work"
"""The waiter's block ended (a new entry, or its timeout): claim again."""


class Waiter:
    """Blocks in XREAD on a dedicated connection when the pump has nothing to claim."""

    def __init__(self, runtime: RuntimeServices) -> None:
        self._runtime = runtime
        self._connection = BlockingConnection(runtime.client.redis)
        self._requests: queue.SimpleQueue[tuple[dict[str, str], float] | None] = queue.SimpleQueue()
        self._closed = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentfn-waiter", daemon=True)

    def start(self) -> None:
        self._connection.refresh_id()
        self._thread.start()

    def arm(self, streams: dict[str, str], timeout_ms: float) -> None:
        """Block on ``streams`` ({key: id}) for up to timeout_ms, then post WORK to the pump."""
        self._requests.put((streams, timeout_ms))

    def interrupt(self) -> None:
        """End the current block now (it posts WORK as usual)."""
        self._connection.unblock()

    def _run(self) -> None:
        recovery = Recovery(self._runtime, "waiting for work")
        while (request := self._requests.get()) is not None:
            try:
                wait_on_streams(self._connection.redis, *request)
                recovery.succeeded()
            except Exception as error:  # noqa: BLE001 - logged; the thread must not die
                if self._closed:
                    return
                if isinstance(error, redis.ConnectionError):
                    self._connection.refresh_id()
                # Claim again only after the pause: a claim re-arms the waiter at once.
                self._stopped.wait(recovery.failed(error))
            if self._closed:
                return
            self._runtime.post(WORK)

    def close(self) -> None:
        self._closed = True
        self._stopped.set()
        self._requests.put(None)
        self._connection.stop_thread(self._thread, timeout_s=1)
        self._connection.close()
