"""An agent's maintenance thread: heartbeat, lease renewal, handler timeouts, the reaper.

One thread, one connection from the client's pool, waking only when something is due (an
Event with a timeout: it sleeps until the earliest of the next heartbeat, the next reap, the
next lease renewal and the next handler deadline, and is poked when a new task needs it
sooner). Lease renewals and timeouts due together go out in one pipeline.

- Heartbeat every ``heartbeat_interval_ms``; a LAPSED (or NOTFOUND) agent registers again.
- Each running task's lease is renewed every third of its lease (``Agent.lease_ms``, else the
  task's timeout_ms). A renewal that says canceled, or is refused as STALE / NOTFOUND (the task
  went back to the queue), interrupts the handler and its result is discarded.
- A handler still running at its task's timeout_ms fails the attempt (retry with backoff) with
  ``TimeoutError`` and is interrupted.
- The reaper (agentfn_reap) runs once per ``reap_interval_ms`` per namespace, whatever the number
  of agents: each agent offers at that interval, and only the one that takes the lock
  ``SET <root>:reap-lock <agent> NX PX <interval>`` runs it. The lock is never released, so the
  next run is one interval later at the earliest.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .. import keys
from ..client.batch import Batch
from ..errors import AgentLapsed, Denied, NotFound, StaleToken
from .executors import Outcome
from .recovery import Recovery, reroutes, run_thread
from .settling import log_failed_attempt

if TYPE_CHECKING:
    from .running import Running
    from .services import RuntimeServices

T = TypeVar("T")

log = logging.getLogger("agentfn.agent")

#: The maintenance jobs as the log names them.
_JOBS = {"heartbeat": "the heartbeat", "reap": "the reaper", "tend": "renewing leases"}


class Maintenance:
    """The maintenance thread of one running agent."""

    def __init__(self, runtime: RuntimeServices) -> None:
        self._runtime = runtime
        self._wake = threading.Event()
        self._closed = False
        self.next_wake = 0.0
        """Monotonic time the thread sleeps until (0 while it is awake)."""
        self._recoveries: dict[str, Recovery] = {}
        self._thread = threading.Thread(target=self._run, name="agentfn-maintenance", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def watch(self, running: Running) -> None:
        """A task started: wake the thread if the task needs it before it would wake anyway."""
        if min(running.next_extend, running.deadline) < self.next_wake:
            self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        run_thread(self._runtime, "the maintenance thread", self._serve)

    def _serve(self) -> None:
        agent = self._runtime.agent
        heartbeat_s, reap_s = agent.heartbeat_interval_ms / 1000, agent.reap_interval_ms / 1000
        next_heartbeat = time.monotonic() + heartbeat_s
        next_reap = time.monotonic()
        while not self._closed:
            self._wake.clear()
            self.next_wake = 0.0
            now = time.monotonic()
            if now >= next_heartbeat:
                next_heartbeat = now + heartbeat_s
                self._guarded(self.heartbeat)
            if now >= next_reap:
                next_reap = now + reap_s
                self._guarded(self.reap)
            next_task = self._guarded(self.tend, now) or now + heartbeat_s
            self.next_wake = min(next_heartbeat, next_reap, next_task)
            self._wake.wait(max(0.0, self.next_wake - time.monotonic()))

    def _guarded(self, job: Callable[..., T], *args: Any) -> T | None:
        """Run one job; an error is logged (with its traceback) and counted by the job's
        Recovery: the job runs again at its next turn, and too many in a row end the agent."""
        recovery = self._recoveries.get(job.__name__)
        if recovery is None:
            recovery = self._recoveries[job.__name__] = Recovery(
                self._runtime, _JOBS.get(job.__name__, job.__name__), scheduled=True
            )
        try:
            result = job(*args)
        except Exception as error:  # noqa: BLE001 - logged; the thread must not die
            if reroutes(error):  # on a cluster: MOVED, a failover... find the owner again
                self._runtime.client.route.reroute()
            recovery.failed(error)
            return None
        if result is not False:  # False: the reaper's turn went to another agent
            recovery.succeeded()
        return result

    def heartbeat(self) -> None:
        """Extend the agent's liveness; register again when it lapsed."""
        runtime = self._runtime
        sent = runtime.clock.local_ms()
        try:
            info = runtime.client.agent_heartbeat(runtime.agent_id, ttl_ms=runtime.agent.ttl_ms)
        except (AgentLapsed, NotFound):
            log.warning("agent %s lapsed; registering again", runtime.agent_id)
            runtime.register()
            return
        except Denied as error:  # it lapsed and another process registered the id since
            runtime.lost_id(error)
            return
        runtime.clock.observe(info.heartbeat_ms, sent, runtime.clock.local_ms())

    def reap(self) -> bool:
        """Run agentfn_reap if this agent takes the namespace's reap lock; True if it did."""
        runtime = self._runtime
        client = runtime.client
        if not client.redis.set(
            keys.reap_lock(client.namespace),
            runtime.agent_id,
            nx=True,
            px=max(1, runtime.agent.reap_interval_ms),
        ):
            return False
        counts = client.reap()
        if any(counts.values()):
            log.debug("agent %s reaped: %s", runtime.agent_id, counts)
        return True

    def tend(self, now: float) -> float:
        """Time out and renew the leases of running tasks that are due; returns when to look again."""
        runtime = self._runtime
        expired: list[Running] = []
        renew: list[Running] = []
        soonest = math.inf
        for running in list(runtime.running.values()):
            if running.finalized:
                continue
            if now >= running.deadline:
                if runtime.finalize(running):
                    expired.append(running)
                continue
            if now >= running.next_extend:
                renew.append(running)
                running.next_extend = now + running.lease_ms / 3000
            soonest = min(soonest, running.deadline, running.next_extend)
        if not expired and not renew:
            return soonest
        batch = Batch(runtime.client)
        for running in expired:
            running.interrupt("timeout")
            batch.fail(running.task.id, running.task.token, _timeout_error(running))
        for running in renew:
            batch.extend(running.task.id, running.task.token, lease_ms=running.lease_ms)
        results = batch.execute(raise_on_error=False)
        for running, result in zip(expired, results[: len(expired)], strict=True):
            if isinstance(result, Exception) and not isinstance(
                result, (StaleToken, Denied, NotFound)
            ):
                log.error(
                    "agent %s: failing timed-out task %s: %s",
                    runtime.agent_id,
                    running.task.id,
                    result,
                )
            elif not isinstance(result, Exception):
                log_failed_attempt(
                    runtime.agent_id,
                    running,
                    Outcome("fail", error=_timeout_error(running)),
                    result,
                    runtime.clock.until(result.due_ms or 0),
                )
        for running, result in zip(renew, results[len(expired) :], strict=True):
            if isinstance(result, (StaleToken, Denied, NotFound)):
                self._lose(running, "lease-lost")
            elif isinstance(result, Exception):
                log.error(
                    "agent %s: renewing the lease of task %s: %s",
                    runtime.agent_id,
                    running.task.id,
                    result,
                )
            elif result.canceled:
                self._lose(running, "canceled")
        return soonest

    def _lose(self, running: Running, reason: str) -> None:
        """The task's result no longer counts: finalize it (nothing to send) and interrupt its handler."""
        if self._runtime.finalize(running):
            log.info(
                "agent %s: task %s interrupted (%s)",
                self._runtime.agent_id,
                running.task.id,
                reason,
            )
            running.interrupt(reason)


def _timeout_error(running: Running) -> str:
    return (
        "TimeoutError: the handler ran longer than the task's timeout_ms "
        f"({running.task.timeout_ms})"
    )
