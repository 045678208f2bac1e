"""Messages through the Python client: blocking receive, iteration, request/reply (sync and asyncio)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis
import redis.asyncio

import agentfn
from agentfn import keys
from agentfn.client.status import server_ms
from agentfn.errors import BadArgument, LimitExceeded, NotFound

from .helpers import wait_until
from .test_messages_contract import fill


@pytest.fixture
def agents(client):
    for agent_id in ("a1", "a2"):
        client.agent_register(agent_id, ["x"], ttl_ms=60_000)
    return client


def second_client(redis_proc, registrar: Any) -> agentfn.Client:
    """Another client on its own connection that knows the secrets of the agents ``registrar``
    registered (as another process of the same agent would)."""
    client = agentfn.Client(
        redis.Redis(host=redis_proc.host, port=redis_proc.port, decode_responses=True)
    )
    client.agent_secrets.update(registrar.agent_secrets)
    return client


def test_send_read_ack_round_trip(agents):
    first = agents.send("a2", "a1", "question", {"q": "ready?", "n": [1, 2]})
    second = agents.send("a2", "a1", "note", "plain text is JSON too", ttl_ms=60_000)
    messages = agents.read_messages("a1")
    assert [m.id for m in messages] == [first, second]
    message = messages[0]
    assert (message.sender, message.to, message.type) == ("a2", "a1", "question")
    assert message.content == {"q": "ready?", "n": [1, 2]} and message.reply_to is None
    assert message.expires_ms > message.sent_ms and not message.redelivered
    assert messages[1].content == "plain text is JSON too"
    assert messages[1].expires_ms == messages[1].sent_ms + 60_000
    assert [m.redelivered for m in agents.read_messages("a1")] == [True, True]
    assert agents.ack("a1", first, second) == 2
    assert agents.read_messages("a1") == []


def test_batch_send_queues_a_message_like_every_other_batch_method(agents):
    batch = agentfn.Batch(agents)
    batch.send("a2", "a1", "note", {"n": 1})
    batch.send("a2", "a1", "note", {"n": 2})
    assert len(batch) == 2 and agents.read_messages("a1") == []  # queued, nothing sent yet
    sent = batch.execute()
    assert [(m.id, m.content) for m in agents.read_messages("a1")] == list(
        zip(sent, [{"n": 1}, {"n": 2}], strict=True)
    )


def test_errors_map_to_exceptions(agents):
    with pytest.raises(NotFound):
        agents.send("a2", "ghost", "note", {})
    assert agents.send("a2", "ghost", "note", {}, allow_unregistered=True)
    with pytest.raises(BadArgument):
        agents.send("a2", "a1", "bad type", {})
    with pytest.raises(TypeError):
        agents.ack("a1")


def test_full_inbox_raises_limit_exceeded(agents, deployed):
    fill(deployed, "a1", agentfn.constants.DEFAULTS["inbox_max"])
    with pytest.raises(LimitExceeded):
        agents.send("a2", "a1", "note", {})
    reached = agents.broadcast("a2", "note", {})
    assert dict(reached) == {} and reached.full == ("a1",)


def test_broadcast_returns_who_it_reached(agents, deployed):
    agents.agent_register("a3", ["y"])
    reached = agents.broadcast("a1", "announce", {"v": 1}, capability="x")
    assert list(reached) == ["a2"] and reached.full == ()
    (message,) = agents.read_messages("a2")
    assert message.id == reached["a2"] and message.content == {"v": 1}
    everyone = agents.broadcast("boss", "announce", 1, ttl_ms=5_000)
    assert sorted(everyone) == ["a1", "a2", "a3"]


def test_receive_blocks_until_a_message_arrives(agents, redis_proc):
    """The sender watches the server (MONITOR) and sends only once the reader is in XREAD BLOCK."""
    sender = second_client(redis_proc, agents)
    monitoring = threading.Event()
    blocked = []

    def send_once_blocked():
        with sender.redis.monitor() as monitor:
            monitoring.set()
            for command in monitor.listen():
                if command["command"].startswith("XREAD ") and " BLOCK " in command["command"]:
                    blocked.append(command["command"])
                    break
        sender.send("a2", "a1", "wake", {"up": True})

    thread = threading.Thread(target=send_once_blocked)
    thread.start()
    try:
        assert monitoring.wait(5)
        begun = time.monotonic()
        (message,) = agents.receive("a1", 10)
        assert message.type == "wake" and time.monotonic() - begun < 5
        assert blocked and "agentfn:{default}:inbox:a1" in blocked[0]
    finally:
        thread.join(5)
        sender.redis.close()


def test_receive_returns_nothing_after_its_timeout(agents):
    begun = time.monotonic()
    assert agents.receive("a1", 0.1) == []
    assert time.monotonic() - begun >= 0.1
    assert agents.receive("a1", 0) == []


def test_receive_returns_unacknowledged_messages_at_once(agents):
    sent = agents.send("a2", "a1", "note", 1)
    assert [m.id for m in agents.receive("a1", 5)] == [sent]
    # Not acknowledged: the next receive returns it again without blocking.
    (again,) = agents.receive("a1", 5)
    assert again.id == sent and again.redelivered


def test_receive_can_acknowledge_what_was_handled(agents):
    first, second = agents.send("a2", "a1", "note", 1), agents.send("a2", "a1", "note", 2)
    assert [m.id for m in agents.receive("a1", 5, count=1)] == [first]
    assert [m.id for m in agents.receive("a1", 5, ack=[first])] == [second]
    assert agents.read_messages("a1", ack=[second]) == []
    with pytest.raises(TypeError):
        agents.read_messages("a1", ack=first)


def test_redelivery_after_the_reader_dies(agents, redis_proc):
    sent = [agents.send("a2", "a1", "note", i) for i in range(3)]
    doomed = second_client(redis_proc, agents)
    assert [m.id for m in doomed.read_messages("a1", count=2)] == sent[:2]
    doomed.redis.close()  # dies without acknowledging
    survivor = second_client(redis_proc, agents)
    try:
        messages = survivor.receive("a1", 5)
        assert [(m.id, m.redelivered) for m in messages] == [
            (sent[0], True),
            (sent[1], True),
            (sent[2], False),
        ]
    finally:
        survivor.redis.close()


def test_pubsub_notification_carries_the_message_id(agents, deployed):
    pubsub = deployed.pubsub()
    pubsub.subscribe(keys.notify_channel("default", "inbox:a1"))
    try:
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        sent = agents.send("a2", "a1", "note", {})
        notification = pubsub.get_message(timeout=5)
        assert notification is not None and notification["data"] == sent
    finally:
        pubsub.close()
    # Whoever missed the notification reads the message from the inbox.
    assert [m.id for m in agents.read_messages("a1")] == [sent]


def test_iteration_acknowledges_each_message_when_the_next_is_asked_for(agents):
    sent = [agents.send("a2", "a1", "note", i) for i in range(3)]
    seen = []
    for message in agents.messages("a1", timeout=0.05):
        seen.append(message.id)
        if len(seen) == 2:
            break  # the second message is in hand, unacknowledged
    assert seen == sent[:2]
    remaining = agents.read_messages("a1")
    assert [(m.id, m.redelivered) for m in remaining] == [(sent[1], True), (sent[2], True)]
    assert [m.id for m in agents.messages("a1", timeout=0.05)] == sent[1:]
    assert agents.read_messages("a1") == []


def responder(redis_proc, stop: threading.Event, handled: list, registrar: Any) -> threading.Thread:
    """An agent 'a2' on its own connection and thread that answers each question with its double."""
    client = second_client(redis_proc, registrar)

    def run():
        try:
            while not stop.is_set():
                for message in client.receive("a2", 0.05):
                    handled.append(message)  # before the reply, which lets the requester go on
                    if message.type == "question":
                        client.send(
                            "a2",
                            message.sender,
                            "answer",
                            {"double": message.content * 2},
                            reply_to=message.id,
                        )
                    client.ack("a2", message.id)
        finally:
            client.redis.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_request_gets_the_correlated_reply(agents, redis_proc):
    stop, handled = threading.Event(), []
    thread = responder(redis_proc, stop, handled, agents)
    try:
        noise = agents.send("a2", "a1", "note", "not a reply")
        reply = agents.request("a1", "a2", "question", 21, timeout=5)
        assert reply.content == {"double": 42} and reply.sender == "a2" and reply.type == "answer"
        assert reply.reply_to == handled[-1].id
        second = agents.request("a1", "a2", "question", 5, timeout=5)
        assert second.content == {"double": 10}
    finally:
        stop.set()
        thread.join(5)
    # The replies were taken out of the inbox; the other message waits for the normal reader.
    assert [m.id for m in agents.read_messages("a1")] == [noise]


def test_request_times_out_and_a_late_reply_stays_in_the_inbox(agents, deployed):
    before_ms = server_ms(deployed)
    begun = time.monotonic()
    with pytest.raises(TimeoutError):
        agents.request("a1", "a2", "question", 1, timeout=0.1)
    assert time.monotonic() - begun >= 0.1
    # By default the request expires when its requester stops waiting (the expiry index says when).
    ((member, expires_ms),) = deployed.zrange(
        keys.message_expiry("default"), 0, -1, withscores=True
    )
    request_id = member.removeprefix("a2 ")
    # Sent at the library's clock reading, which lies between the call and the entry id's time.
    sent_ms = expires_ms - 100
    assert before_ms <= sent_ms <= int(request_id.split("-")[0])
    with pytest.raises(TimeoutError):
        agents.request("a1", "a2", "question", 2, timeout=0.05, ttl_ms=60_000)
    (request,) = agents.read_messages("a2")
    assert request.content == 2 and request.expires_ms == request.sent_ms + 60_000
    late = agents.send("a2", "a1", "answer", 2, reply_to=request.id)
    (message,) = agents.read_messages("a1")
    assert message.id == late and message.reply_to == request.id


def test_expired_messages_are_not_received(agents, deployed):
    gone = agents.send("a2", "a1", "note", "soon gone", ttl_ms=20)
    kept = agents.send("a2", "a1", "note", "kept")
    # It expires 20 ms after it was sent, which is no later than its entry id's time.
    wait_until(deployed, int(gone.split("-")[0]) + 20)
    assert [m.id for m in agents.receive("a1", 1)] == [kept]


def test_async_client_receives_iterates_and_requests(redis_proc, deployed):
    async def scenario():
        connection = redis.asyncio.Redis(host=redis_proc.host, port=redis_proc.port)
        other = redis.asyncio.Redis(host=redis_proc.host, port=redis_proc.port)
        try:
            client, peer = agentfn.AsyncClient(connection), agentfn.AsyncClient(other)
            peer.agent_secrets = client.agent_secrets  # the same agents' other process
            await client.agent_register("a1", ["x"])
            await client.agent_register("a2", ["x"])
            assert await client.receive("a1", 0.05) == []

            async def answer_one():
                async for message in peer.messages("a2"):
                    await peer.send(
                        "a2", message.sender, "answer", message.content + 1, reply_to=message.id
                    )
                    return message

            answering = asyncio.create_task(answer_one())
            reply = await client.request("a1", "a2", "question", 41, timeout=5)
            question = await answering
            assert reply.content == 42 and reply.reply_to == question.id
            # The responder left its loop while holding the question: it comes back unacknowledged.
            (again,) = await peer.read_messages("a2")
            assert again.id == question.id and again.redelivered
            await peer.ack("a2", again.id)

            waiting = asyncio.create_task(client.receive("a1", 5))
            sent = await peer.send("a2", "a1", "note", {"async": True})
            (received,) = await waiting
            assert received.id == sent
            seen = [m.id async for m in client.messages("a1", timeout=0.05)]
            assert seen == [sent] and await client.read_messages("a1") == []
            with pytest.raises(TimeoutError):
                await client.request("a1", "a2", "question", 1, timeout=0.05)
        finally:
            await connection.aclose()
            await other.aclose()

    asyncio.run(scenario())


def test_resp3_connection_gets_the_same_results(redis_proc, deployed):
    client = agentfn.Client(redis.Redis(host=redis_proc.host, port=redis_proc.port, protocol=3))
    try:
        client.agent_register("a1", ["x"])
        client.agent_register("a2", ["x"])
        stop, handled = threading.Event(), []
        thread = responder(redis_proc, stop, handled, client)
        try:
            assert client.request("a1", "a2", "question", 2, timeout=5).content == {"double": 4}
        finally:
            stop.set()
            thread.join(5)
        reached = client.broadcast("a1", "note", "ü")
        (message,) = client.read_messages("a2")
        assert reached == {"a2": message.id} and message.content == "ü"
    finally:
        client.redis.close()
