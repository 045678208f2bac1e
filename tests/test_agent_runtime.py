"""The agent runtime in this process: handlers, retries, timeouts, cancel, heartbeat, reaper, stop."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis

import agentfn
from agentfn import keys
from agentfn.agent.maintenance import Maintenance

from .agent_fixtures import serving, wait_for_task, wait_server_ms

DONE = {"completed", "failed", "dead", "canceled"}


def noop_agent(client: agentfn.Client, agent_id: str = "a1", **options) -> agentfn.Agent:
    agent = agentfn.Agent(client, agent_id, **options)
    agent.handler("noop")(lambda task: None)
    return agent


def test_sync_and_async_handlers_complete_their_tasks(client):
    agent = agentfn.Agent(client, "a1")

    @agent.handler("upper")
    def upper(task):
        return {"text": task.payload["text"].upper(), "attempt": task.attempt, "id": task.id}

    @agent.handler("slow_echo")
    async def slow_echo(task):
        await asyncio.sleep(0)
        return task.payload

    first = client.submit("upper", {"text": "redis"})
    second = client.submit("slow_echo", "plain string")
    with serving(agent):
        assert agent.capabilities == ["upper", "slow_echo"]
        assert [a.id for a in client.agent_find("upper")] == ["a1"]
        done = wait_for_task(client, first, DONE)
        assert done.state == "completed"
        assert done.result == {"text": "REDIS", "attempt": 1, "id": first}
        assert wait_for_task(client, second, DONE).result == "plain string"
    # Stopping deregisters the agent.
    assert client.agent_find("upper") == []


def test_handler_exception_fails_with_retry_then_succeeds(client):
    agent = agentfn.Agent(client, "a1")

    @agent.handler("flaky")
    def flaky(task):
        if task.attempt == 1:
            raise RuntimeError("boom on the first try")
        return "ok"

    task_id = client.submit("flaky", {}, backoff_ms=1)
    with serving(agent):
        info = wait_for_task(client, task_id, DONE)
    assert info.state == "completed"
    assert info.attempt == 2
    assert info.result == "ok"
    assert [(e["attempt"], e["error"], e["agent"]) for e in info.errors] == [
        (1, "RuntimeError: boom on the first try", "a1")
    ]


def test_permanent_failure_is_not_retried(client):
    agent = agentfn.Agent(client, "a1")

    @agent.handler("doomed")
    def doomed(task):
        raise agentfn.PermanentFailure("the input makes no sense")

    task_id = client.submit("doomed", {}, max_attempts=5)
    with serving(agent):
        info = wait_for_task(client, task_id, DONE)
    assert (info.state, info.attempt) == ("failed", 1)
    assert info.error == "PermanentFailure: the input makes no sense"


def test_result_that_is_not_json_fails_the_attempt(client):
    agent = agentfn.Agent(client, "a1")

    @agent.handler("bad_result")
    def bad_result(task):
        return {1, 2} if task.attempt == 1 else [1, 2]

    task_id = client.submit("bad_result", {}, backoff_ms=1)
    with serving(agent):
        info = wait_for_task(client, task_id, DONE)
    assert (info.state, info.attempt, info.result) == ("completed", 2, [1, 2])
    assert info.errors[0]["error"].startswith(
        "TypeError: Object of type set is not JSON serializable"
    )


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_handler_over_its_timeout_fails_and_is_interrupted(client, kind):
    agent = agentfn.Agent(client, "a1")
    reasons: list[str | None] = []

    if kind == "sync":

        @agent.handler("sleepy")
        def sleepy(task):
            if task.attempt == 1:
                task.wait_interrupted(10)
                reasons.append(task.interrupt_reason)
                return "too late"
            return "in time"
    else:

        @agent.handler("sleepy")
        async def sleepy(task):
            if task.attempt == 1:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    reasons.append(task.interrupt_reason)
                    raise
            return "in time"

    task_id = client.submit("sleepy", {}, timeout_ms=300, backoff_ms=1)
    with serving(agent):
        info = wait_for_task(client, task_id, DONE)
    assert (info.state, info.attempt, info.result) == ("completed", 2, "in time")
    assert (
        info.errors[0]["error"]
        == "TimeoutError: the handler ran longer than the task's timeout_ms (300)"
    )
    assert reasons == ["timeout"]


def test_cancel_interrupts_the_running_handler_and_discards_its_result(client):
    agent = agentfn.Agent(
        client, "a1", lease_ms=300
    )  # renewed every 100 ms: the cancel is seen then
    started, cancelled = threading.Event(), threading.Event()

    @agent.handler("long")
    async def long(task):
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "finished"

    task_id = client.submit("long", {})
    with serving(agent):
        assert started.wait(5)
        assert client.cancel(task_id) == "running"
        assert cancelled.wait(5)
    info = client.get_task(task_id)
    assert (info.state, info.result) == ("canceled", None)


def test_leases_are_renewed_while_a_handler_runs(client):
    # Leases of 1 s renewed along the way: a renewal may run late by most of a second on a
    # loaded machine without the lease lapsing.
    agent = agentfn.Agent(client, "a1", lease_ms=1000)
    started = threading.Event()

    @agent.handler("long")
    def long(task):
        started.set()
        task.client.redis.blpop(["agentfn-test:go"], timeout=5)
        return "done"

    task_id = client.submit("long", {}, timeout_ms=5000)
    with serving(agent):
        assert started.wait(5)
        first = client.get_task(task_id).lease_deadline_ms
        # more than two lease lengths: without renewals the lease would be gone
        wait_server_ms(client, 2200)
        renewed = client.get_task(task_id)
        assert renewed.state == "running" and renewed.lease_deadline_ms > first
        assert client.reap()["expired_leases"] == 0
        client.redis.rpush("agentfn-test:go", "1")
        assert wait_for_task(client, task_id, DONE).state == "completed"


def test_concurrency_runs_that_many_handlers_at_once(client):
    agent = agentfn.Agent(client, "a1", concurrency=3)
    barrier = threading.Barrier(3, timeout=5)

    @agent.handler("meet")
    def meet(task):
        barrier.wait()  # raises BrokenBarrierError unless three run at the same time
        return task.payload

    ids = [client.submit("meet", i) for i in range(3)]
    with serving(agent):
        assert [wait_for_task(client, i, DONE).result for i in ids] == [0, 1, 2]


def test_finishing_claims_the_next_task_in_the_same_call(client, r):
    agent = agentfn.Agent(client, "a1", concurrency=4)
    count = 200
    all_done = threading.Event()
    handled: list[str] = []

    @agent.handler("noop")
    def noop(task):
        handled.append(task.id)
        if len(handled) == count:
            all_done.set()

    batch = agentfn.Batch(client)
    for i in range(count):
        batch.submit("noop", i)
    last = batch.execute()[-1]
    r.config_resetstat()
    with serving(agent):
        assert all_done.wait(20)
        wait_for_task(client, last, DONE)
        calls = r.info("commandstats")["cmdstat_fcall"]["calls"]
    # At most one FCALL per task (a complete with NEXT, or one complete_many for the tasks
    # that finished together: 4 at most), plus a handful: the register, first claim, the
    # claims that find the queue empty, reaps, deregister.
    assert count // 4 <= calls <= count + 12, calls


def test_a_drain_at_concurrency_8_completes_each_task_once(client, r):
    """Completions that finish together go out in one complete_many, failures one call each:
    every task still ends once, with its own result and its own task.completed event."""
    agent = agentfn.Agent(client, "a1", concurrency=8)
    count = 160

    @agent.handler("work")
    def work(task):
        if task.payload % 10 == 0 and task.attempt == 1:
            raise ValueError("first attempts of every tenth task fail")
        return {"n": task.payload}

    batch = agentfn.Batch(client)
    for index in range(count):
        batch.submit("work", index, backoff_ms=0)
    ids = batch.execute()
    with serving(agent):
        infos = [wait_for_task(client, task_id, DONE, timeout=30) for task_id in ids]
    assert [(info.state, info.result) for info in infos] == [
        ("completed", {"n": index}) for index in range(count)
    ]
    assert [info.attempt for info in infos] == [2 if i % 10 == 0 else 1 for i in range(count)]
    completions = Counter(
        fields["task"]
        for _, fields in r.xrange(keys.events(client.namespace))
        if fields.get("type") == "task.completed"
    )
    assert completions == Counter(ids)


def test_input_required_asks_the_workflow_for_input(client):
    agent = agentfn.Agent(client, "a1")

    @agent.handler("approve")
    def approve(task):
        if task.inputs and "_signal" in task.inputs:
            return {"approved_by": task.inputs["_signal"]}
        raise agentfn.InputRequired({"question": "ship it?"})

    workflow_id = client.create_workflow([{"id": "gate", "capability": "approve", "input": {}}])
    with serving(agent):
        waiting = client.wait_workflow(workflow_id, timeout=10, until_input=True)
        assert waiting.step("gate").state == "input-required"
        assert client.get_task(waiting.step("gate").task).prompt == {"question": "ship it?"}
        client.signal(workflow_id, "gate", "alice")
        finished = client.wait_workflow(workflow_id, timeout=10)
    assert finished.state == "completed"
    assert finished.results == {"gate": {"approved_by": "alice"}}


def test_input_required_outside_a_workflow_fails_the_task(client):
    agent = agentfn.Agent(client, "a1")

    @agent.handler("ask")
    def ask(task):
        raise agentfn.InputRequired("which one?")

    task_id = client.submit("ask", {})
    with serving(agent):
        info = wait_for_task(client, task_id, DONE)
    assert info.state == "failed"
    assert "INPUT_REQUIRED is only for workflow tasks" in info.error


def test_heartbeat_keeps_a_short_lived_agent_live(client):
    # A heartbeat may run late by most of the TTL on a loaded machine without the agent lapsing.
    with serving(noop_agent(client, ttl_ms=1000, heartbeat_interval_ms=100)):
        wait_server_ms(client, 2500)  # two and a half times the TTL
        assert [a.id for a in client.agent_find("noop")] == ["a1"]


def test_an_agent_that_was_removed_registers_again_at_its_next_heartbeat(client):
    with serving(noop_agent(client, ttl_ms=3000, heartbeat_interval_ms=100)):
        events = keys.events(client.namespace)
        client.agent_deregister("a1")
        # The next heartbeat may come at once (every 100 ms), so look at the event stream from
        # the deregistration on: a registration of a1 must follow it.
        (removed_at,) = [
            entry_id
            for entry_id, fields in client.redis.xrange(events)
            if fields["type"] == "agent.deregistered"
        ]
        last, registered = removed_at, False
        while not registered:
            reply = client.redis.execute_command("XREAD", "BLOCK", 5000, "STREAMS", events, last)
            assert reply, "the agent did not register again"
            for entry_id, fields in reply[0][1]:
                last = entry_id
                registered = registered or (
                    fields["type"] == "agent.registered" and fields["agent"] == "a1"
                )
        assert [a.id for a in client.agent_find("noop")] == ["a1"]
        # ...and it still serves.
        assert wait_for_task(client, client.submit("noop", {}), DONE).state == "completed"


def test_reaper_runs_under_a_namespace_lock(client):
    first, second = (
        noop_agent(client, agent_id, reap_interval_ms=60_000) for agent_id in ("a1", "a2")
    )
    lock = keys.reap_lock(client.namespace)
    maintenance = [Maintenance(agent._new_runtime(None)) for agent in (first, second)]
    assert maintenance[0].reap() is True
    assert maintenance[1].reap() is False  # the lock is held: no second reap
    assert client.redis.get(lock) == "a1"
    assert 59_000 < client.redis.pttl(lock) <= 60_000
    client.redis.delete(lock)
    assert maintenance[1].reap() is True
    assert client.redis.get(lock) == "a2"


def test_many_agents_reap_once_per_interval_not_each(client):
    reaps: list[str] = []

    class CountingClient(agentfn.Client):
        def reap(self, limit=None):
            reaps.append("reap")
            return super().reap(limit)

    counting = CountingClient(client.redis, client.namespace)
    agents = [noop_agent(counting, f"a{i}", reap_interval_ms=100) for i in range(4)]
    threads = [agent.start() for agent in agents]
    try:
        wait_server_ms(client, 1000)
    finally:
        for agent in agents:
            agent.stop(now=True)
        for thread in threads:
            thread.join(10)
    # Four agents offering every 100 ms for ~1 s: about 10 reaps, not about 40.
    assert 5 <= len(reaps) <= 13, len(reaps)


def test_expired_lease_of_a_vanished_worker_is_redelivered_by_a_live_agents_reaper(client):
    client.agent_register("ghost", ["job"])
    task_id = client.submit("job", {"n": 1})
    assert [t.id for t in client.claim("ghost", lease_ms=200).tasks] == [
        task_id
    ]  # ...and never finishes it
    agent = agentfn.Agent(client, "a1", reap_interval_ms=50)

    @agent.handler("job")
    def job(task):
        return {"attempt": task.attempt}

    with serving(agent):
        info = wait_for_task(client, task_id, DONE)
    assert (info.state, info.agent, info.result) == ("completed", "a1", {"attempt": 2})
    assert [e["error"] for e in info.errors] == ["lease expired"]


def test_stop_lets_running_work_finish_within_the_grace_period(client):
    agent = agentfn.Agent(client, "a1", concurrency=2, grace_period_s=5)
    started = threading.Event()
    release = threading.Event()

    @agent.handler("work")
    def work(task):
        started.set()
        release.wait(5)
        return "finished"

    task_id = client.submit("work", {})
    thread = agent.start()
    assert started.wait(5)
    agent.stop()
    later = client.submit("work", {})  # submitted after the stop: not claimed
    release.set()
    thread.join(10)
    assert not thread.is_alive()
    assert client.get_task(task_id).state == "completed"
    assert client.get_task(later).state == "queued"


def test_work_left_after_the_grace_period_is_handed_back_at_once(client):
    agent = agentfn.Agent(client, "a1", grace_period_s=0.2)
    started = threading.Event()

    @agent.handler("stuck")
    def stuck(task):
        started.set()
        task.wait_interrupted(30)
        return "too late"

    task_id = client.submit("stuck", {}, timeout_ms=60_000)
    thread = agent.start()
    assert started.wait(5)
    agent.stop()
    thread.join(5)
    assert not thread.is_alive()
    info = client.get_task(task_id)
    assert info.state == "queued"  # back in the queue now, not after its 60 s lease
    assert info.errors[0]["error"] == "agent a1 deregistered"


def test_an_outcome_in_flight_when_the_agent_stops_now_never_answers_another_call(
    client, redis_proc
):
    """stop(now=True) abandons the pump with a finished task's outcome written and its reply
    not yet come (Redis holds writes: CLIENT PAUSE WRITE): the pump's connection is closed,
    not handed back to the pool, where the next call on the shared Client would read that
    reply as its own (once a submit got the agent's deregister reply this way)."""
    agent = agentfn.Agent(client, "a1")
    side = redis.Redis(host=redis_proc.host, port=redis_proc.port)  # a pool of its own
    sending: list[threading.Thread] = []
    paused = threading.Event()

    class StopsTheAgent(dict):
        """A result whose serialisation (by the pump, as it sends the outcome) stops the agent,
        waits for the run to end, and pauses writes before the outcome goes out."""

        def items(self):  # json.dumps calls it for a dict subclass
            if not sending:
                sending.append(threading.current_thread())
                agent.stop(now=True)
                run.join(10)
                # Shorter than redis-py's socket timeout (5 s), after which it would resend.
                side.client_pause(2_000, all=False)
                paused.set()
            return super().items()

    agent.handler("work")(lambda task: StopsTheAgent(done=True))
    run = agent.start()
    task_id = client.submit("work", {})  # after start(): the hook joins `run`
    try:
        assert paused.wait(10) and sending[0].name == "agentfn-pump"
        sending[0].join(10)
        assert not run.is_alive() and not sending[0].is_alive()
        # A read (FCALL_RO) passes the pause; on the pump's connection it would wait behind the
        # paused complete, then read its reply (StaleToken: the task was handed back).
        info = client.get_task(task_id)
    finally:
        side.client_unpause()
        side.close()
    assert info.id == task_id and info.state == "queued"  # handed back by the deregister
    assert isinstance(client.submit("work", {}), str)


def test_run_async_serves_on_the_running_loop_and_stops_on_cancel(client):
    agent = agentfn.Agent(client, "a1")
    loops: list[asyncio.AbstractEventLoop] = []

    @agent.handler("where")
    async def where(task):
        loops.append(asyncio.get_running_loop())
        return "here"

    async def main():
        runner = asyncio.create_task(agent.run_async(handle_signals=False))
        await asyncio.get_running_loop().run_in_executor(None, agent.ready.wait, 5)
        task_id = client.submit("where", {})
        info = await asyncio.get_running_loop().run_in_executor(
            None, wait_for_task, client, task_id, DONE
        )
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        return asyncio.get_running_loop(), info

    loop, info = asyncio.run(main())
    assert info.result == "here"
    assert loops == [loop]
    assert client.agent_find("where") == []


def test_message_handler_replies_to_the_sender(client):
    agent = agentfn.Agent(client, "a1")

    @agent.on_message("question")
    def question(message):
        return {"answer": message.content["n"] * 2}

    @agent.on_message("crash")
    async def crash(message):
        raise ValueError("no")

    client.agent_register("asker", [])  # reading its inbox (the reply) takes its secret
    with serving(agent):
        reply = client.request("asker", "a1", "question", {"n": 21}, timeout=5)
        assert reply.content == {"answer": 42}
        failure = client.request("asker", "a1", "crash", {}, timeout=5)
        assert failure.content == {"error": "ValueError: no"}
    assert client.redis.xlen(keys.inbox("default", "a1")) == 0  # both acknowledged (deleted)


def pinger(
    client: agentfn.Client,
    agent_id: str,
    release: threading.Event | None = None,
    started: threading.Event | None = None,
) -> agentfn.Agent:
    """An agent that answers "ping" with {"pong": its id, "n": n}; after ``release``, when given."""
    agent = agentfn.Agent(client, agent_id)

    @agent.on_message("ping")
    def ping(message):
        if started is not None:
            started.set()
        if release is not None:
            release.wait(10)
        return {"pong": agent_id, "n": message.content["n"]}

    return agent


@contextmanager
def acknowledgements(
    r: redis.Redis, namespace: str, *agent_ids: str
) -> Iterator[Callable[[str], None]]:
    """``wait(agent_id)`` blocks until the agent's inbox had one more entry removed (an ack is
    XACK + XDEL and emits no event: this listens to the inboxes' keyspace notifications)."""
    previous = r.config_get("notify-keyspace-events")["notify-keyspace-events"]
    r.config_set("notify-keyspace-events", "Kt")
    channels = {
        f"__keyspace@0__:{keys.inbox(namespace, agent_id)}": agent_id for agent_id in agent_ids
    }
    pubsub = r.pubsub()
    removed: Counter[str] = Counter()
    waited: Counter[str] = Counter()
    try:
        pubsub.subscribe(*channels)
        for _ in channels:
            assert pubsub.get_message(timeout=5)["type"] == "subscribe"

        def wait(agent_id: str) -> None:
            waited[agent_id] += 1
            while removed[agent_id] < waited[agent_id]:
                notification = pubsub.get_message(timeout=5)
                assert notification is not None, f"no acknowledgement in the inbox of {agent_id}"
                if notification["data"] == "xdel":
                    removed[channels[notification["channel"]]] += 1

        yield wait
    finally:
        pubsub.close()
        r.config_set("notify-keyspace-events", previous)


def test_agents_answering_the_same_type_exchange_one_request_and_one_reply(client, r):
    """A reply carries its request's type, yet never reaches a handler: no ping-pong."""
    with (
        acknowledgements(r, client.namespace, "A", "B") as acknowledged,
        serving(pinger(client, "A")) as a,
        serving(pinger(client, "B")),
    ):
        reply = a.request("B", "ping", {"n": 1}, timeout=5)
        acknowledged("B")  # B's mailroom acknowledged the request (it sent the reply before)
        acknowledged(
            "A"
        )  # A's mailroom acknowledged the reply (a handler's answer would go out before)
        assert (reply.sender, reply.type, reply.content) == ("B", "ping", {"pong": "B", "n": 1})
        sent = [
            fields
            for _, fields in r.xrange(keys.events(client.namespace))
            if fields["type"] == "message.sent"
        ]
        assert [(event["from"], event["to"], event["message"]) for event in sent] == [
            ("A", "B", reply.reply_to),
            ("B", "A", reply.id),
        ]
        assert (
            r.xlen(keys.inbox(client.namespace, "A"))
            == r.xlen(keys.inbox(client.namespace, "B"))
            == 0
        )


def test_a_late_reply_times_out_the_request_and_is_then_acknowledged(client, r, caplog):
    caplog.set_level(logging.DEBUG, logger="agentfn.agent")
    started, release = threading.Event(), threading.Event()
    inbox = keys.inbox(client.namespace, "A")
    with (
        acknowledgements(r, client.namespace, "A") as acknowledged,
        serving(pinger(client, "A")) as a,
        serving(pinger(client, "B", release, started)),
    ):
        try:
            with pytest.raises(TimeoutError, match="no reply from B to message"):
                a.request("B", "ping", {"n": 1}, timeout=0.2, ttl_ms=60_000)
            assert started.wait(5)
        finally:
            release.set()
        acknowledged("A")
        assert r.xpending(inbox, "agentfn")["pending"] == 0 and r.xlen(inbox) == 0
    (late,) = [
        record for record in caplog.records if "nobody waits for reply" in record.getMessage()
    ]
    assert late.levelno == logging.DEBUG
    assert [fields["type"] for _, fields in r.xrange(keys.events(client.namespace))].count(
        "message.sent"
    ) == 2


def test_message_handlers_and_coroutines_request_through_the_agent(client):
    """A handler's own request reads the inbox itself (the mailroom waits for the handler)."""
    a = pinger(client, "A")

    @a.on_message("relay")
    def relay(message):
        return a.request("B", "ping", message.content, timeout=5).content

    @a.on_message("relay_async")
    async def relay_async(message):
        return (await a.request_async("B", "ping", message.content, timeout=5)).content

    client.agent_register("app", [])  # reading its inbox (the reply) takes its secret
    with serving(a), serving(pinger(client, "B")):
        assert client.request("app", "A", "relay", {"n": 2}, timeout=10).content == {
            "pong": "B",
            "n": 2,
        }
        assert client.request("app", "A", "relay_async", {"n": 3}, timeout=10).content == {
            "pong": "B",
            "n": 3,
        }
        assert asyncio.run(a.request_async("B", "ping", {"n": 4}, timeout=5)).content == {
            "pong": "B",
            "n": 4,
        }
    # Stopped: no mailroom, the request reads the inbox itself (registered: it takes the secret).
    client.agent_register("A", [])
    with serving(pinger(client, "B")):
        assert a.request("B", "ping", {"n": 5}, timeout=5).content == {"pong": "B", "n": 5}


def test_a_task_handler_gets_its_reply_in_the_grace_period(client):
    """The mailroom serves until the agent shuts down, not only until the stop request."""
    started, release = threading.Event(), threading.Event()
    a = pinger(client, "A")

    @a.handler("ask")
    def ask(task):
        return a.request("B", "ping", task.payload, timeout=5).content

    task_id = client.submit("ask", {"n": 6})
    with serving(pinger(client, "B", release, started)):
        thread = a.start()
        try:
            assert started.wait(5)
            a.stop()
        finally:
            release.set()
        thread.join(10)
    assert not thread.is_alive()
    info = client.get_task(task_id)
    assert (info.state, info.result) == ("completed", {"pong": "B", "n": 6})


def test_agent_needs_a_client_and_handlers(client):
    unbound = agentfn.Agent(None, "a1")
    unbound.handler("x")(lambda t: None)
    with pytest.raises(RuntimeError, match="no client"):
        unbound.run()
    with pytest.raises(RuntimeError, match="no handlers"):
        agentfn.Agent(client, "a1").run()
    agent = agentfn.Agent(client, "a1")
    agent.handler("x")(lambda t: None)
    with pytest.raises(ValueError, match="already has a handler"):
        agent.handler("x")(lambda t: None)


def test_tasks_complete_once_when_the_agents_connections_are_killed(client, r):
    """Every connection of the agent dies mid-run (pipelines in flight, the waiter blocked):
    outcomes are sent again (a repeat is refused as STALE), tasks claimed by a lost reply come
    back after their lease, and each task is completed exactly once."""
    agent = noop_agent(client, concurrency=4, reap_interval_ms=100)
    killed = threading.Event()

    @agent.handler("work")
    def work(task):
        if task.payload == "kill" and not killed.is_set():
            killed.set()
            task.client.redis.client_kill_filter(_type="normal", skipme=True)
        return task.payload

    batch = agentfn.Batch(client)
    for index in range(60):
        batch.submit("work", "kill" if index == 20 else index, timeout_ms=1000)
    ids = batch.execute()
    with serving(agent):
        infos = [wait_for_task(client, task_id, DONE, timeout=20) for task_id in ids]
    assert killed.is_set()
    assert [info.state for info in infos] == ["completed"] * 60
    assert [info.result for info in infos] == [
        ("kill" if index == 20 else index) for index in range(60)
    ]
    completions = [
        fields["task"]
        for _, fields in r.xrange(keys.events(client.namespace))
        if fields.get("type") == "task.completed"
    ]
    assert sorted(completions) == sorted(ids)
