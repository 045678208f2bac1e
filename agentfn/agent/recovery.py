"""How the runtime's threads live through errors: log each with its traceback, back off, and
give up (the agent deregisters and its run raises) when an error is not one that time cures.

Recoverable errors (Redis unreachable or restarting, the library not loaded after a restart
without persistence, a busy or loading server) are retried for as long as they last, with a
pause doubling up to MAX_PAUSE_S. Any other error (a refusal such as NOPERM, a bug) is retried
too, but FATAL_STREAK of them in a row end the agent: better gone than a live zombie that
heartbeats and never claims.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from ..errors import LibraryNotReady
from ..urls import describe_redis_error, url_of

if TYPE_CHECKING:
    from .services import RuntimeServices

log = logging.getLogger("agentfn.agent")

#: First pause after an error, and the longest one (s).
FIRST_PAUSE_S = 0.05
MAX_PAUSE_S = 5.0

#: Unrecoverable errors in a row that end the agent.
FATAL_STREAK = 5

#: Error replies of a server that is busy, loading or failing over: they pass.
_TRANSIENT_REPLIES = ("LOADING", "BUSY", "OOM", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY")


def recoverable(error: BaseException) -> bool:
    """True for an error that waiting cures (Redis down or restarting, the library missing)."""
    if isinstance(error, redis.AuthenticationError):
        return False
    if isinstance(error, (redis.ConnectionError, redis.TimeoutError, LibraryNotReady)):
        return True
    return isinstance(error, redis.ResponseError) and str(error).startswith(_TRANSIENT_REPLIES)


def describe(error: BaseException, client_redis: object) -> str:
    """An error in words: a connection failure names the (redacted) URL; others as raised."""
    if isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
        return describe_redis_error(error, url_of(client_redis))
    if isinstance(error, LibraryNotReady):
        return str(error)
    return f"{type(error).__name__}: {error}"


class Recovery:
    """The error streak of one of the runtime's threads (one job of it)."""

    def __init__(self, runtime: RuntimeServices, what: str, *, scheduled: bool = False) -> None:
        """``scheduled``: the job runs again at its own next turn (maintenance), not after the
        pause failed() returns."""
        self._runtime = runtime
        self._what = what
        self._scheduled = scheduled
        self._pause = 0.0
        self._streak = 0
        self._repeats = 0
        self._last = ""

    def succeeded(self) -> None:
        if self._streak or self._repeats:
            log.info("agent %s: %s works again", self._runtime.agent_id, self._what)
        self._pause, self._streak, self._repeats, self._last = 0.0, 0, 0, ""

    def failed(self, error: BaseException) -> float:
        """Log ``error`` (with its traceback the first time in a row) and return how long to
        pause; the FATAL_STREAK-th unrecoverable one in a row aborts the agent."""
        runtime = self._runtime
        self._pause = min(MAX_PAUSE_S, self._pause * 2 or FIRST_PAUSE_S)
        text = describe(error, runtime.client.redis)
        repeated = text == self._last
        self._last = text
        again = "again at its next turn" if self._scheduled else f"again in {self._pause:.2f} s"
        if recoverable(error):
            # Said in words (no traceback: it is not a defect); while it lasts, logged on the
            # 1st, 2nd, 4th, 8th... time in a row, the others at DEBUG.
            self._repeats = self._repeats + 1 if repeated else 1
            level = logging.WARNING if self._repeats & (self._repeats - 1) == 0 else logging.DEBUG
            log.log(
                level,
                "agent %s: %s failed: %s; %s%s",
                runtime.agent_id,
                self._what,
                text,
                again,
                f" ({self._repeats} times in a row)" if self._repeats > 1 else "",
            )
            log.debug("the error above", exc_info=error)
            return self._pause
        self._streak += 1
        if self._streak >= FATAL_STREAK:
            log.error(
                "agent %s: %s failed %d times in a row (%s): the agent deregisters and stops",
                runtime.agent_id,
                self._what,
                self._streak,
                text,
                exc_info=error,
            )
            runtime.abort(error)
            return self._pause
        log.error(
            "agent %s: %s failed: %s; %s (%d of %d before the agent stops)",
            runtime.agent_id,
            self._what,
            text,
            again,
            self._streak,
            FATAL_STREAK,
            exc_info=None if repeated else error,
        )
        return self._pause


def run_thread(runtime: RuntimeServices, what: str, body: Callable[[], None]) -> None:
    """The target of one of the runtime's threads: ``body`` recovers from its own errors; one
    that escapes it is a defect, logged with its traceback, and the agent stops (never a
    thread that died in silence)."""
    try:
        body()
    except BaseException as error:  # noqa: BLE001 - reported, and the run raises it
        log.exception("agent %s: %s failed", runtime.agent_id, what)
        runtime.abort(error)
