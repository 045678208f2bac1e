"""A poison task or message never stops an agent: each bad attempt ends by its policy, with one
WARNING naming it, and the next valid task or message is handled. Background threads that
cannot recover end the agent (deregistered, its run raises) instead of leaving a zombie."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Iterator

import pytest
import redis

import agentfn
from agentfn import keys
from agentfn.server import free_port

from .agent_fixtures import serving, wait_for_task
from .servers import acl_user, redis_server

DONE = {"completed", "failed", "dead", "canceled"}


class LogWatch(logging.Handler):
    """Collects the agent's log records; ``wait(text)`` blocks until one contains ``text``."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    def lines(self, level: int = logging.WARNING) -> list[str]:
        return [self.format(r) for r in list(self.records) if r.levelno >= level]

    def wait(self, text: str, timeout: float = 10.0) -> str:
        with self._changed:
            found = self._changed.wait_for(
                lambda: next((line for line in self.lines() if text in line), None), timeout
            )
        assert found, f"no log line with {text!r} in {self.lines()}"
        return found


@pytest.fixture
def log() -> Iterator[LogWatch]:
    watch = LogWatch()
    watch.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("agentfn.agent")
    logger.addHandler(watch)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
        logger.setLevel(previous)


def echo_agent(client: agentfn.Client, concurrency: int = 1) -> agentfn.Agent:
    agent = agentfn.Agent(client, "worker-1", concurrency=concurrency)

    @agent.handler("echo")
    def echo(task: agentfn.TaskContext) -> object:
        return task.payload

    return agent


def test_a_payload_that_is_not_json_fails_for_good_and_the_next_task_runs(client, r, log):
    bad = client.submit("echo", {"fine": True})
    r.hset(keys.task(client.namespace, bad), "payload", '{"nan": NaN')  # as a raw HSET would
    good = client.submit("echo", {"n": 2})
    with serving(echo_agent(client)):
        assert wait_for_task(client, good, DONE).result == {"n": 2}
        poisoned = wait_for_task(client, bad, DONE)
    assert poisoned.state == "failed"
    assert poisoned.error.startswith("PoisonTask: its payload is not valid JSON")
    assert poisoned.payload == '{"nan": NaN'  # shown as stored
    [line] = [line for line in log.lines() if bad in line]
    assert line.startswith(f"WARNING agent worker-1: task {bad} (echo) attempt 1/3 failed: ")
    assert line.endswith("; failed for good (no retry)")


@pytest.mark.parametrize("concurrency", [1, 2])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_handler_that_raises_is_logged_with_what_happens_next(client, log, concurrency, kind):
    agent = echo_agent(client, concurrency)

    def boom(task: agentfn.TaskContext) -> None:
        raise ValueError(f"boom {task.attempt}")

    async def boom_async(task: agentfn.TaskContext) -> None:
        boom(task)

    agent.handler("flaky")(boom if kind == "sync" else boom_async)
    failing = client.submit("flaky", {}, max_attempts=2, backoff_ms=1)
    with serving(agent):
        assert wait_for_task(client, failing, DONE).state == "dead"
        after = client.submit("echo", "next")
        assert wait_for_task(client, after, DONE).result == "next"
    first, second = [line for line in log.lines() if failing in line]
    assert first.startswith(
        f"WARNING agent worker-1: task {failing} (flaky) attempt 1/2 failed: ValueError: boom 1; "
        "retry in "
    )
    assert second.startswith(
        f"WARNING agent worker-1: task {failing} (flaky) attempt 2/2 failed: ValueError: boom 2; "
        "dead-lettered (out of attempts): agentfn dead-letters list\nTraceback (most recent call"
    )
    assert 'raise ValueError(f"boom {task.attempt}")' in second


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_handler_that_exits_its_thread_fails_the_attempt(client, log, concurrency):
    agent = echo_agent(client, concurrency)

    @agent.handler("quits")
    def quits(task: agentfn.TaskContext) -> None:
        sys.exit(3)

    quitter = client.submit("quits", {}, max_attempts=1)
    with serving(agent):
        assert wait_for_task(client, quitter, DONE).error == "SystemExit: 3"
        after = client.submit("echo", "still here")
        assert wait_for_task(client, after, DONE).result == "still here"
    log.wait(f"task {quitter} (quits) attempt 1/1 failed: SystemExit: 3; dead-lettered")


def test_a_result_that_is_not_json_is_retried_by_policy(client, log):
    agent = echo_agent(client)

    @agent.handler("odd")
    def odd(task: agentfn.TaskContext) -> object:
        return object()

    task_id = client.submit("odd", {}, max_attempts=1)
    with serving(agent):
        info = wait_for_task(client, task_id, DONE)
        assert wait_for_task(client, client.submit("echo", 1), DONE).result == 1
    assert info.state == "dead"
    assert info.error.startswith("TypeError: Object of type object is not JSON serializable")
    log.wait(f"task {task_id} (odd) attempt 1/1 failed: TypeError")


def test_a_handler_that_hangs_times_out_and_the_agent_goes_on(client, log):
    agent = echo_agent(client, concurrency=2)

    @agent.handler("hangs")
    def hangs(task: agentfn.TaskContext) -> None:
        task.wait_interrupted(30)  # until the runtime gives up on it

    stuck = client.submit("hangs", {}, timeout_ms=300, max_attempts=1)
    with serving(agent):
        info = wait_for_task(client, stuck, DONE)
        assert wait_for_task(client, client.submit("echo", 2), DONE).result == 2
    assert info.state == "dead" and info.error.startswith("TimeoutError")
    log.wait(f"task {stuck} (hangs) attempt 1/1 failed: TimeoutError: the handler ran longer")


# -- messages -----------------------------------------------------------------------------


def message_agent(client: agentfn.Client) -> agentfn.Agent:
    agent = agentfn.Agent(client, "listener")

    @agent.on_message("question")
    def answer(message: agentfn.Message) -> object:
        if message.content == "explode":
            raise RuntimeError("cannot answer that")
        return {"answer": message.content}

    return agent


def test_a_malformed_message_is_answered_with_an_error_and_the_next_one_handled(client, r, log):
    client.agent_register("asker", [], ttl_ms=60_000)
    agent = message_agent(client)
    with serving(agent):
        first = client.request("asker", "listener", "question", "first", timeout=5)
        assert first.content == {"answer": "first"}
        inbox = keys.inbox(client.namespace, "listener")
        poison = {"from": "asker", "type": "question", "content": "{bad", "reply_to": ""}
        r.xadd(inbox, {**poison, "sent_ms": first.sent_ms, "expires_ms": first.expires_ms})
        reply = client.request("asker", "listener", "question", "fine", timeout=5)
        assert reply.content == {"answer": "fine"}
        warning = log.wait("is malformed")
    assert "is malformed: bad content: Expecting property name" in warning
    # the poison was answered (the asker reads it) and acknowledged (it never comes back)
    [error] = [m for m in client.read_messages("asker") if m.reply_to is not None]
    assert error.content["error"].startswith("PoisonMessage: bad content")
    assert r.xpending(inbox, "agentfn")["pending"] == 0


def test_a_message_handler_that_raises_is_logged_and_answered(client, log):
    client.agent_register("asker", [], ttl_ms=60_000)
    with serving(message_agent(client)):
        failed = client.request("asker", "listener", "question", "explode", timeout=5)
        assert client.request("asker", "listener", "question", 1, timeout=5).content == {
            "answer": 1
        }
    assert failed.content == {"error": "RuntimeError: cannot answer that"}
    line = log.wait(f"handler of message {failed.reply_to} (type 'question' from asker) failed")
    assert "Traceback" in line and 'raise RuntimeError("cannot answer that")' in line


# -- background threads -------------------------------------------------------------------


def test_a_thread_that_cannot_recover_deregisters_the_agent_and_ends_its_run(client, r, log):
    """Waiting for work is refused for good (NOPERM on XREAD): after a few tries with backoff the
    agent deregisters and run() raises, instead of heartbeating forever without claiming."""
    with acl_user(r, "no-xread", "+@all", "-xread") as connection:
        agent = echo_agent(agentfn.Client(connection, client.namespace))
        failures: list[BaseException] = []

        def run() -> None:
            try:
                agent.run(handle_signals=False)
            except BaseException as error:  # noqa: BLE001 - the test inspects it
                failures.append(error)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(timeout=30)
    assert not thread.is_alive()
    [failure] = failures
    assert isinstance(failure, redis.exceptions.NoPermissionError)
    assert client.agent_find("echo") == []  # deregistered
    log.wait("waiting for work failed 5 times in a row")
    assert any("Traceback" in line for line in log.lines(logging.ERROR))


def test_the_library_gone_after_a_restart_is_said_in_words_and_served_again(client, r, log):
    agent = echo_agent(client)
    agent.reap_interval_ms = 20
    with serving(agent):
        r.function_flush()  # what a restart without persistence leaves
        line = log.wait("the reaper failed: the agentfn library is not deployed on redis://")
        assert "run: agentfn deploy --url redis://" in line and "Traceback" not in line
        agentfn.deploy(r, client.namespace)
        assert wait_for_task(client, client.submit("echo", "back"), DONE).result == "back"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_message_handler_that_hangs_is_answered_with_a_timeout(client, log, kind):
    client.agent_register("asker", [], ttl_ms=60_000)
    agent = agentfn.Agent(client, "listener", message_timeout_s=0.2)
    release = threading.Event()

    def stuck(message: agentfn.Message) -> None:
        release.wait(30)

    async def stuck_async(message: agentfn.Message) -> None:
        await asyncio.sleep(30)

    agent.on_message("stuck")(stuck if kind == "sync" else stuck_async)
    agent.on_message("ping")(lambda message: "pong")
    try:
        with serving(agent):
            timed_out = client.request("asker", "listener", "stuck", {}, timeout=5)
            assert client.request("asker", "listener", "ping", {}, timeout=5).content == "pong"
    finally:
        release.set()
    assert timed_out.content == {
        "error": "TimeoutError: the handler did not return within message_timeout_s (0.2 s)"
    }
    log.wait(f"handler of message {timed_out.reply_to} (type 'stuck' from asker) failed")


def test_an_agent_lives_through_a_redis_restart(tmp_path, log):
    """Redis goes away under a serving agent: it says so (with the URL) and keeps trying with
    backoff; once Redis is back (from its RDB file), the agent serves the next task."""
    port = free_port()
    with redis_server("--port", str(port), "--dir", str(tmp_path)):
        connection = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
        agentfn.deploy(connection)
        client = agentfn.Client(connection)
        agent = echo_agent(client)
        thread = agent.start()
        assert wait_for_task(client, client.submit("echo", "before"), DONE).result == "before"
        connection.save()
    try:
        log.wait(f"cannot reach Redis at redis://127.0.0.1:{port}: connection refused")
        with redis_server("--port", str(port), "--dir", str(tmp_path)):
            after = client.submit("echo", "after")
            assert wait_for_task(client, after, DONE, timeout=30).result == "after"
            agent.stop(now=True)
            thread.join(timeout=10)
    finally:
        agent.stop(now=True)
    assert not thread.is_alive()
