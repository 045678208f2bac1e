"""The agent runtime's machinery (internal; agentfn/agent/agent.py describes the model).

Threads of one running agent:

- the supervisor (the caller of ``Agent.run``) registers the agent, starts the others, waits for
  a stop request, then for the pump to drain within the grace period, and shuts down:
  deregistering hands back every task still held, at once;
- the pump is the only thread that claims and finishes tasks. It hands claimed tasks to an
  executor and sends finished ones back, all of them in one pipeline whose last call carries
  ``NEXT <free slots>``, so finishing and claiming share a round trip. At concurrency > 1 it
  may send a second pipeline before reading the first one's replies (on a connection of its
  own), so that Redis runs one while Python prepares the other;
- the waiter blocks in ``XREAD`` (on a connection of its own) on the streams named by the
  pump's last claim that returned fewer tasks than asked, from the ids it returned, and tells
  the pump when to claim again;
- maintenance (agentfn/agent/maintenance.py) heartbeats, renews leases, times out handlers and reaps;
- handlers run inline in the pump (sync handlers at concurrency 1: no thread hand-off), in
  handler threads (sync, concurrency > 1) or as tasks on an event loop (async handlers);
- the mailroom (only with message handlers) reads the inbox, answers messages and hands replies
  to the agent's requests (``agent.request``).

A running task is finalized exactly once, by whoever gets there first: the pump when its
handler returns, or maintenance when it times out, is canceled or loses its lease. A slot is
free again only when the handler has actually returned (a sync handler cannot be killed).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import secrets
import threading
import time
from typing import Any

import redis

from ..client.api.tasks import ClaimedTask, ClaimResult
from ..client.batch import Batch
from ..client.blocking import checkout
from ..client.client import sync_twin
from ..client.routing import not_run
from ..client.waiting import ServerClock
from ..constants import LIMITS
from ..errors import (
    AgentLapsed,
    BadArgument,
    Denied,
    LibraryNotReady,
    LimitExceeded,
    NamespaceMoving,
    NotFound,
    NotReplicated,
    StaleToken,
)
from .executors import HandlerThreads, LoopExecutor, Outcome, call_sync
from .mailroom import Mailroom
from .maintenance import Maintenance
from .recovery import Recovery
from .registration import register_waiting
from .running import Running
from .settling import Flight, item_results, log_failed_attempt, send_outcomes
from .types import AgentSettings, TaskContext
from .waiter import WORK, Waiter

log = logging.getLogger("agentfn.agent")

# Events for the pump (besides (Running, Outcome) pairs from executors, and the waiter's WORK).
STOP = "stop"
ABANDON = "abandon"
"""The grace period is over: exit without sending anything more."""

# Events for the supervisor.
PUMP_FINISHED = "pump-finished"
STOP_NOW = "stop-now"

#: Pipelines of outcomes the pump may have in flight at once (concurrency > 1).
MAX_FLIGHTS = 2


class Runtime:
    """One run of an agent: what Agent.run creates and Agent.stop ends."""

    def __init__(self, agent: AgentSettings, loop: asyncio.AbstractEventLoop | None) -> None:
        assert agent.client is not None
        self.agent = agent
        self.client = sync_twin(agent.client)
        """The runtime's own I/O goes through a synchronous Client (the agent's, or for an agent
        bound to an AsyncClient, a twin on the same server); handlers get the agent's client."""
        self.agent_id = agent.agent_id
        self.secret = self.client.agent_secrets.get(self.agent_id) or secrets.token_hex(16)
        """The agent's secret, kept in memory only (never logged): fresh for each process, or the
        one this process's client registered the id with already."""
        self.clock = ServerClock()
        self.events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        """The pump's inbox: (Running, Outcome) pairs (or lists of them), WORK, STOP, ABANDON."""
        self.control: queue.SimpleQueue[str] = queue.SimpleQueue()
        """The supervisor's inbox: STOP, STOP_NOW, PUMP_FINISHED (put() is signal-safe)."""
        self.running: dict[str, Running] = {}
        """Claimed tasks whose handler has not returned or whose outcome is not sent yet."""
        self.stopping = False
        self.abandoned = False
        self.failure: BaseException | None = None
        self._unsent: list[tuple[Running, Outcome]] = []
        self._flights: collections.deque[Flight] = collections.deque()
        """Pipelines sent and not read yet, oldest first (at most _max_flights)."""
        self._reserved = 0
        """Slots that the NEXT of pipelines in flight may fill."""
        self._connection: redis.Connection | None = None
        self._connection_pool: redis.ConnectionPool | None = None
        """The pool _connection came from (on a cluster, the slot owner's when it was taken)."""
        """The pump's own connection (from the client's pool) for its pipelines."""
        self._claim_wanted = True
        self._waiter_armed = False
        self._waiter_deadline = 0.0
        self._finalize_lock = threading.Lock()
        self._inline = agent.concurrency == 1
        # Two pipelines in flight let Python and Redis work at the same time; at concurrency 1
        # there is never a second outcome to send while the first is in flight.
        self._max_flights = 1 if self._inline else MAX_FLIGHTS
        self._loop = loop
        self._threads: HandlerThreads | None = None
        self._async: LoopExecutor | None = None
        self._recovery = Recovery(self, "claiming and settling tasks")
        self.waiter = Waiter(self)
        self.maintenance = Maintenance(self)
        self.mailroom: Mailroom | None = None
        if agent.message_handlers:
            self.mailroom = Mailroom(self)

    # -- shared by the threads -------------------------------------------------------------

    def post(self, event: Any) -> None:
        """Give the pump an event (thread-safe)."""
        self.events.put(event)

    def finalize(self, running: Running) -> bool:
        """Claim the right to decide a running task's outcome; False if someone already did."""
        with self._finalize_lock:
            if running.finalized:
                return False
            running.finalized = True
            return True

    def async_executor(self) -> LoopExecutor:
        """The executor of async handlers (the caller's loop under run_async, else a private one)."""
        with self._finalize_lock:
            if self._async is None:
                self._async = LoopExecutor(self._loop, self.post)
            return self._async

    def register(self) -> None:
        """Register (or register again) with the agent's capabilities; sets the server clock."""
        agent = self.agent
        sent = self.clock.local_ms()
        info = self.client.agent_register(
            self.agent_id,
            agent.capabilities,
            ttl_ms=agent.ttl_ms,
            metadata=agent.metadata,
            secret=self.secret,
        )
        self.clock.observe(info.heartbeat_ms, sent, self.clock.local_ms())

    def lost_id(self, error: Denied) -> None:
        """The library denied this process the agent's id (another process registered it after
        this one lapsed, with another secret): stop, with one clear line."""
        log.error("agent %s: its id now belongs to another process; stopping", self.agent_id)
        self.abort(error)

    def abort(self, error: BaseException) -> None:
        """A thread cannot recover: stop now (deregistering hands its tasks back), and make
        serve() raise ``error``."""
        if self.failure is None:
            self.failure = error
        self.request_stop(now=True)

    def request_stop(self, *, now: bool = False) -> None:
        """Stop claiming; a second request (or now=True) ends the grace period at once."""
        if self.stopping or now:
            self.control.put(STOP_NOW)
        self.stopping = True
        self.control.put(STOP)
        self.events.put(STOP)

    # -- the supervisor ----------------------------------------------------------------------

    def serve(self) -> None:
        """Register (waiting while another registration holds the id: agent/registration.py;
        a stop requested meanwhile ends the run unregistered), serve until stopped, shut down.
        Raises what stopped the pump, if anything."""
        if not register_waiting(
            self.client,
            self.agent_id,
            self.register,
            self.agent.register_wait_s,
            stopping=lambda: self.stopping,
        ):
            log.info("agent %s stopped before it could register", self.agent_id)
            self.agent.ready.set()  # wakes Agent.start(); run() clears it
            self._close_twin()
            return
        log.info(
            "agent %s serving %s (concurrency %d)",
            self.agent_id,
            ", ".join(self.agent.capabilities) or "direct tasks",
            self.agent.concurrency,
        )
        pump = threading.Thread(target=self._pump, name="agentfn-pump", daemon=True)
        try:
            self.waiter.start()
            self.maintenance.start()
            if self.mailroom is not None:
                self.mailroom.start()
            pump.start()
            self.agent.ready.set()
            self._supervise()
        finally:
            self._shutdown(pump)
        if self.failure is not None:
            raise self.failure

    def _supervise(self) -> None:
        grace_deadline: float | None = None
        while True:
            timeout = (
                None if grace_deadline is None else max(0.0, grace_deadline - time.monotonic())
            )
            try:
                event = self.control.get(timeout=timeout)
            except queue.Empty:
                break
            if event == PUMP_FINISHED:
                return
            if event == STOP_NOW:
                break
            if event == STOP and grace_deadline is None:
                log.info(
                    "agent %s stopping: %d task(s) running, grace period %.1f s",
                    self.agent_id,
                    len(self.running),
                    self.agent.grace_period_s,
                )
                grace_deadline = time.monotonic() + self.agent.grace_period_s
        self.abandoned = True
        self.post(ABANDON)

    def _shutdown(self, pump: threading.Thread) -> None:
        self.stopping = True
        self.maintenance.close()
        self.waiter.close()
        if self.mailroom is not None:
            self.mailroom.close()
        for running in list(self.running.values()):
            if self.finalize(running):
                running.interrupt("shutdown")
        try:
            released = self.client.agent_deregister(self.agent_id, secret=self.secret)
            if released:
                log.info("agent %s handed back %d task(s)", self.agent_id, released)
        except (NotFound, Denied):  # gone, or the id belongs to another process by now
            pass
        except redis.RedisError as error:
            log.warning(
                "agent %s could not deregister (its tasks return after their lease): %s",
                self.agent_id,
                error,
            )
        if not self.abandoned:
            pump.join(timeout=1)
        if self._threads is not None:
            self._threads.close()
        if self._async is not None:
            self._async.close()
        self._close_twin()
        log.info("agent %s stopped", self.agent_id)

    def _close_twin(self) -> None:
        """Close the runtime's own synchronous twin of an AsyncClient (not the caller's client)."""
        if self.client is not self.agent.client:
            self.client.redis.close()

    # -- the pump ----------------------------------------------------------------------------

    def _free(self) -> int:
        return self.agent.concurrency - len(self.running) - self._reserved

    def _may_claim(self) -> bool:
        return self._claim_wanted and not self.stopping and self._free() > 0

    def _pump(self) -> None:
        try:
            while not self.abandoned:
                if not self._unsent and not self._flights and not self._may_claim():
                    if self.stopping and not self.running:
                        break
                    self._handle(self.events.get())
                while not self.events.empty():
                    self._handle(self.events.get())
                if self.abandoned:
                    break
                try:
                    if self._unsent and len(self._flights) < self._max_flights:
                        self._send()
                    elif self._flights:
                        self._receive()
                    elif self._may_claim():
                        self._claim()
                    else:
                        continue
                    self._recovery.succeeded()
                except (redis.RedisError, LibraryNotReady, NamespaceMoving, NotReplicated) as error:
                    # Unreachable, the library gone (a restart without persistence), a refusal
                    # that is not the library's (OOM, BUSY, NOPERM...), or on a cluster the slot
                    # moved or failed over: log, try again later, on the namespace's owner by then.
                    self._ground_flights()
                    self._drop_connection()
                    self._claim_wanted = True
                    self._pause(self._recovery.failed(error))
        except BaseException as error:  # reported by the supervisor
            log.exception("agent %s: the pump failed", self.agent_id)
            self.failure = error
        finally:
            # Abandoned (or failed) with pipelines in flight: their replies are unread.
            self._release_connection(closed=bool(self._flights))
            self.control.put(PUMP_FINISHED)

    def _release_connection(self, *, closed: bool) -> None:
        """Give the pipeline connection back to its pool; ``closed``: close it first, since
        replies may be unread on it (the pool would hand it to the next caller, a submit or the
        supervisor's deregister on the shared Client, who would read them as its own)."""
        if self._connection is not None:
            if closed:
                self._connection.disconnect()
            if self._connection_pool is not None:
                self._connection_pool.release(self._connection)
            self._connection = None

    def _drop_connection(self) -> None:
        """Close the pipeline connection (replies may be unread); the next send opens one on the
        namespace's owner, found again after a redirect or a failover."""
        self._release_connection(closed=True)
        self.client.route.reroute()

    def _pause(self, seconds: float) -> None:
        """Wait, still taking events (an event-driven wait, not a poll)."""
        deadline = time.monotonic() + seconds
        while not self.abandoned and (remaining := deadline - time.monotonic()) > 0:
            try:
                self._handle(self.events.get(timeout=remaining))
            except queue.Empty:
                return

    def _handle(self, event: Any) -> None:
        if event is WORK:
            self._waiter_armed = False
            self._claim_wanted = True
        elif isinstance(event, tuple):
            self._done(*event)
        elif isinstance(event, list):
            for running, outcome in event:
                self._done(running, outcome)
        # STOP and ABANDON only wake the pump: the flags are already set.

    def _done(self, running: Running, outcome: Outcome) -> None:
        """A handler returned."""
        if self.finalize(running):
            self._unsent.append((running, outcome))
        else:  # finalized earlier (timed out, canceled, lost): the slot is free only now
            self.running.pop(running.task.id, None)
            self._claim_wanted = True

    def _relogin(self) -> None:
        if not self.stopping:  # a stopping agent deregisters: never bring it back
            log.warning("agent %s lapsed; registering again", self.agent_id)
            try:
                self.register()
            except Denied as error:
                self.lost_id(error)

    def _claim(self) -> None:
        asked = min(self._free(), LIMITS["claim_count"])
        try:
            claim = self.client.claim(self.agent_id, asked, lease_ms=self.agent.lease_ms)
        except (AgentLapsed, NotFound):
            self._relogin()
            return
        except Denied as error:
            self.lost_id(error)
            return
        except NotReplicated as error:  # the claim ran: serve what it claimed
            log.warning("agent %s: %s", self.agent_id, error)
            claim = error.result  # type: ignore[assignment]
        self._accept(claim, asked)

    def _send(self) -> None:
        """Send every finished outcome in one pipeline (completions of several tasks in one
        complete_many), the last call carrying NEXT <free slots>; its replies are read by
        _receive (another pipeline may go out meanwhile)."""
        finished, self._unsent = self._unsent, []
        for running, _ in finished:
            self.running.pop(running.task.id, None)
        wanted = 0 if self.stopping else min(self._free(), LIMITS["claim_count"])
        batch = Batch(self.client)
        calls = send_outcomes(batch, finished, wanted, self.agent.lease_ms)
        self._flights.append(Flight(batch, calls, wanted))
        self._reserved += wanted
        if self._connection is None:
            self._connection_pool = self.client.redis.connection_pool
            self._connection = checkout(self._connection_pool, "FCALL")
        batch.write_to(self._connection)

    def _receive(self) -> None:
        """Read the replies of the oldest pipeline in flight; start the tasks its NEXT claimed."""
        flight = self._flights[0]
        assert self._connection is not None
        results = flight.batch.read_from(self._connection)
        for result in results:
            if not_run(result):  # the slot moves or moved: send the flight again
                raise result
        if flight.batch.replication_error is not None:  # applied, not yet on enough replicas
            log.warning("agent %s: %s", self.agent_id, flight.batch.replication_error)
        self._flights.popleft()
        self._reserved -= flight.wanted
        lapsed: list[tuple[Running, Outcome]] = []
        for call, call_result in zip(flight.calls, results, strict=True):
            for (running, outcome), result in zip(
                call, item_results(call, call_result), strict=True
            ):
                if isinstance(result, AgentLapsed):  # only a call with NEXT checks the agent
                    lapsed.append((running, outcome))
                elif isinstance(result, Exception):
                    self._refused(running, outcome, result)
                elif outcome.kind == "fail":
                    log_failed_attempt(
                        self.agent_id,
                        running,
                        outcome,
                        result,
                        self.clock.until(result.due_ms or 0),
                    )
        if lapsed:  # registered again once, and sent again
            self._relogin()
            self._unsent += lapsed
        last = results[-1]
        if flight.wanted and not isinstance(last, Exception) and last.next is not None:
            self._accept(last.next, flight.wanted)
        elif flight.wanted:
            self._claim_wanted = True

    def _ground_flights(self) -> None:
        """The connection failed: what was in flight is sent again (a call that went through is
        then refused as STALE, and its result was recorded already)."""
        for flight in reversed(self._flights):
            self._unsent[:0] = flight.finished
        self._flights.clear()
        self._reserved = 0

    def _refused(self, running: Running, outcome: Outcome, error: Exception) -> None:
        task = running.task
        if isinstance(error, (StaleToken, Denied, NotFound)):
            log.info(
                "agent %s: outcome of task %s attempt %d discarded: %s",
                self.agent_id,
                task.id,
                task.attempt,
                error,
            )
        elif isinstance(error, (BadArgument, LimitExceeded)) and outcome.kind == "complete":
            self._unsent.append(
                (
                    running,
                    Outcome("fail", error=f"the library refused the result: {error}", retry=False),
                )
            )
        else:
            log.error("agent %s: finishing task %s failed: %s", self.agent_id, task.id, error)

    def _accept(self, claim: ClaimResult, asked: int) -> None:
        """Start what a claim returned; arm the waiter when it returned fewer tasks than asked
        (the claim drained every stream and named them with their ids, read in the same call)."""
        self._claim_wanted = False
        if len(claim.tasks) < asked:
            self._arm(claim)
        for_loop = [running for running in map(self._start, claim.tasks) if running is not None]
        if for_loop:
            self.async_executor().submit(for_loop)

    def _arm(self, claim: ClaimResult) -> None:
        if self.stopping:
            return
        timeout_ms = float(self.agent.heartbeat_interval_ms)
        if claim.next_due_ms is not None:
            timeout_ms = min(timeout_ms, self.clock.until(claim.next_due_ms) + 1)
        deadline = time.monotonic() + timeout_ms / 1000
        if self._waiter_armed:
            if deadline < self._waiter_deadline - 0.002:  # a delayed task is due sooner: re-arm
                self.waiter.interrupt()
            return
        self._waiter_armed = True
        self._waiter_deadline = deadline
        self.waiter.arm(claim.wait_streams, timeout_ms)

    def _start(self, task: ClaimedTask) -> Running | None:
        """Run a claimed task's handler; an async one is returned instead, for the loop (in a batch)."""
        handler = self.agent.task_handlers.get(task.capability)
        running = Running(
            task,
            handler,
            TaskContext(task, self.agent_id, self.agent.client or self.client),
            self.agent.lease_ms,
            time.monotonic(),
        )
        self.running[task.id] = running
        self.maintenance.watch(running)
        if task.problem is not None:
            self._done(running, Outcome("fail", error=f"PoisonTask: {task.problem}", retry=False))
        elif handler is None:
            self._done(
                running,
                Outcome(
                    "fail",
                    error=f"LookupError: agent {self.agent_id} has no handler for "
                    f"capability {task.capability}",
                    retry=False,
                ),
            )
        elif handler.is_async:
            return running
        elif self._inline:
            self._done(running, call_sync(handler, running.context))
        else:
            if self._threads is None:
                self._threads = HandlerThreads(self.agent.concurrency, self.post)
            self._threads.submit(running)
        return None
