"""Contract tests: the message functions called with raw FCALL, as any language would."""

from __future__ import annotations

import pytest
import redis

from agentfn.constants import DEFAULTS, LIMITS
from agentfn.library.protocol import load_specs

from .helpers import ROOT, assert_refused, fcall, pairs, secret_of, server_ms, snapshot, wait_until
from .secret_helpers import WRONG_SECRET

INBOX = f"{ROOT}:inbox"
EXPIRY = f"{ROOT}:msg-expiry"
S1 = secret_of("a1")


def register(r, agent_id, caps="x", *options):
    return pairs(fcall(r, "agentfn_agent_register", agent_id, secret_of(agent_id), caps, *options))


def send(r, sender, to, kind="note", content='{"n":1}', *options) -> str:
    return pairs(fcall(r, "agentfn_msg_send", sender, to, kind, content, *options))["id"]


def read(r, agent_id, *options) -> tuple[list[dict], list[str]]:
    reply = pairs(fcall(r, "agentfn_msg_read", agent_id, secret_of(agent_id), *options))
    return [pairs(message) for message in reply["messages"]], reply["wait"]


def ack(r, agent_id, *ids) -> int:
    return pairs(fcall(r, "agentfn_msg_ack", agent_id, secret_of(agent_id), ",".join(ids)))[
        "removed"
    ]


def test_send_appends_to_the_inbox_and_indexes_the_expiry(deployed):
    register(deployed, "a1")
    before = server_ms(deployed)
    reply = pairs(
        fcall(
            deployed,
            "agentfn_msg_send",
            "p1",
            "a1",
            "question",
            '{"q":"ready?"}',
            "TTL_MS",
            "60000",
        )
    )
    after = server_ms(deployed)
    ((entry_id, fields),) = deployed.xrange(f"{INBOX}:a1")
    assert entry_id == reply["id"]
    assert fields == {
        "from": "p1",
        "type": "question",
        "content": '{"q":"ready?"}',
        "reply_to": "",
        "sent_ms": fields["sent_ms"],
        "expires_ms": str(reply["expires_ms"]),
    }
    assert before <= int(fields["sent_ms"]) <= after
    assert int(fields["expires_ms"]) == int(fields["sent_ms"]) + 60000
    assert deployed.zscore(EXPIRY, f"a1 {entry_id}") == reply["expires_ms"]
    (group,) = deployed.xinfo_groups(f"{INBOX}:a1")
    assert group["name"] == "agentfn" and group["pending"] == 0
    # The inbox key lives until its last message expires (then it is empty anyway).
    assert 0 < deployed.pttl(f"{INBOX}:a1") <= 60000
    events = [f for _, f in deployed.xrange(f"{ROOT}:events") if f["type"] == "message.sent"]
    assert events == [
        {
            "type": "message.sent",
            "message": entry_id,
            "from": "p1",
            "to": "a1",
            "message_type": "question",
        }
    ]


def test_default_ttl_is_the_retention_time_and_inbox_expiry_only_grows(deployed):
    register(deployed, "a1")
    long_id = send(deployed, "p1", "a1")
    assert deployed.pttl(f"{INBOX}:a1") > DEFAULTS["retention_ms"] - 60_000
    assert (
        deployed.zscore(EXPIRY, f"a1 {long_id}")
        > server_ms(deployed) + DEFAULTS["retention_ms"] - 60_000
    )
    send(deployed, "p1", "a1", "note", "1", "TTL_MS", "1000")
    assert deployed.pttl(f"{INBOX}:a1") > DEFAULTS["retention_ms"] - 60_000


def test_messages_arrive_in_send_order_per_inbox(deployed):
    register(deployed, "a1")
    sent = [send(deployed, f"s{i % 3}", "a1", "note", str(i)) for i in range(25)]
    messages, _ = read(deployed, "a1", "COUNT", "100")
    assert [m["id"] for m in messages] == sent
    assert [m["content"] for m in messages] == [str(i) for i in range(25)]
    assert [m["from"] for m in messages] == [f"s{i % 3}" for i in range(25)]
    assert all(m["to"] == "a1" and m["redelivered"] == 0 for m in messages)
    # COUNT pages through a backlog in order.
    register(deployed, "a2")
    sent = [send(deployed, "s", "a2", "note", str(i)) for i in range(5)]
    first, _ = read(deployed, "a2", "COUNT", "2")
    assert [m["id"] for m in first] == sent[:2]
    ack(deployed, "a2", *sent[:2])
    second, _ = read(deployed, "a2", "COUNT", "10")
    assert [m["id"] for m in second] == sent[2:]


def test_unacknowledged_messages_come_back_after_the_reader_dies(deployed, redis_proc):
    register(deployed, "a1")
    sent = [send(deployed, "p1", "a1", "note", str(i)) for i in range(3)]
    # A reader reads two messages on its own connection and dies without acknowledging.
    doomed = redis.Redis(host=redis_proc.host, port=redis_proc.port, decode_responses=True)
    first, _ = read(doomed, "a1", "COUNT", "2")
    doomed.close()
    assert [m["id"] for m in first] == sent[:2]
    assert deployed.xpending(f"{INBOX}:a1", "agentfn")["pending"] == 2
    # Its successor gets them again (marked redelivered) before the one never delivered.
    again, _ = read(deployed, "a1", "COUNT", "10")
    assert [m["id"] for m in again] == sent
    assert [m["redelivered"] for m in again] == [1, 1, 0]
    assert ack(deployed, "a1", *sent) == 3
    assert read(deployed, "a1")[0] == []
    assert deployed.xlen(f"{INBOX}:a1") == 0 and deployed.zcard(EXPIRY) == 0


def test_ack_removes_messages_for_good_and_is_safe_to_repeat(deployed, raw):
    register(deployed, "a1")
    one, two = send(deployed, "p1", "a1"), send(deployed, "p1", "a1")
    read(deployed, "a1")
    assert ack(deployed, "a1", one) == 1
    assert ack(deployed, "a1", one) == 0
    assert [entry_id for entry_id, _ in deployed.xrange(f"{INBOX}:a1")] == [two]
    assert deployed.xpending(f"{INBOX}:a1", "agentfn")["pending"] == 1
    assert deployed.zrange(EXPIRY, 0, -1) == [f"a1 {two}"]
    # A message may be acknowledged without being read (it is simply removed).
    three = send(deployed, "p1", "a1")
    assert ack(deployed, "a1", two, three, "1-1") == 2
    assert deployed.xlen(f"{INBOX}:a1") == 0 and deployed.zcard(EXPIRY) == 0
    # Only a registered agent (with its secret) reads or acknowledges its inbox.
    assert_refused(
        deployed, raw, "NOTFOUND", "agentfn_msg_ack", "nobody", secret_of("nobody"), "1-1"
    )


def test_read_acknowledges_handled_messages_before_reading(deployed):
    register(deployed, "a1")
    sent = [send(deployed, "p1", "a1", "note", str(i)) for i in range(4)]
    first, _ = read(deployed, "a1", "COUNT", "2")
    assert [m["id"] for m in first] == sent[:2]
    # Handled both: acknowledge them and get the next two in one call.
    second, _ = read(deployed, "a1", "COUNT", "2", "ACK", ",".join(sent[:2]))
    assert [(m["id"], m["redelivered"]) for m in second] == [(sent[2], 0), (sent[3], 0)]
    assert [entry_id for entry_id, _ in deployed.xrange(f"{INBOX}:a1")] == sent[2:]
    # Only the first of those was handled: the other one comes back.
    third, _ = read(deployed, "a1", "ACK", sent[2])
    assert [(m["id"], m["redelivered"]) for m in third] == [(sent[3], 1)]
    assert deployed.zrange(EXPIRY, 0, -1) == [f"a1 {sent[3]}"]


def test_unregistered_recipient_is_refused_but_a_lapsed_one_still_receives(deployed, raw):
    assert_refused(deployed, raw, "NOTFOUND", "agentfn_msg_send", "p1", "ghost", "note", "{}")
    assert send(deployed, "p1", "ghost", "note", "{}", "ALLOW_UNREGISTERED", "yes")
    assert deployed.xlen(f"{INBOX}:ghost") == 1
    deadline = int(register(deployed, "short", "x", "TTL_MS", "30")["expires_ms"])
    wait_until(deployed, deadline)
    register(deployed, "other")  # sweeps 'short': its record says lapsed
    assert deployed.hget(f"{ROOT}:agent:short", "status") == "lapsed"
    kept = send(deployed, "p1", "short", "note", '"while you were away"')
    assert [m["id"] for m in read(deployed, "short")[0]] == [kept]


def test_broadcast_reaches_exactly_the_live_agents_with_the_capability(deployed):
    register(deployed, "a1", "x")
    register(deployed, "a2", "x,y")
    register(deployed, "a3", "y")
    register(deployed, "sender", "x")
    deadline = int(register(deployed, "short", "x", "TTL_MS", "30")["expires_ms"])
    wait_until(deployed, deadline)  # 'short' lapsed, but no sweep has run: it is still indexed
    assert deployed.zscore(f"{ROOT}:cap:x", "short") is not None
    reply = pairs(fcall(deployed, "agentfn_msg_broadcast", "sender", "x", "announce", '{"v":2}'))
    reached = pairs(reply["reached"])
    assert sorted(reached) == ["a1", "a2"] and reply["full"] == []
    for agent_id, message_id in reached.items():
        ((message,), _) = read(deployed, agent_id)
        assert (
            message["id"] == message_id
            and message["from"] == "sender"
            and message["content"] == '{"v":2}'
        )
        ack(deployed, agent_id, message_id)
    assert not deployed.exists(f"{INBOX}:short", f"{INBOX}:sender", f"{INBOX}:a3")
    everyone = pairs(
        pairs(fcall(deployed, "agentfn_msg_broadcast", "sender", "*", "announce", "1"))["reached"]
    )
    assert sorted(everyone) == ["a1", "a2", "a3"]
    assert pairs(fcall(deployed, "agentfn_msg_broadcast", "sender", "nobody", "announce", "1")) == {
        "reached": [],
        "full": [],
    }
    kinds = [
        f["type"] for _, f in deployed.xrange(f"{ROOT}:events") if f["type"].startswith("message")
    ]
    assert kinds == ["message.broadcast"] * 3


def test_broadcast_skips_and_names_full_inboxes(deployed):
    register(deployed, "a1", "x")
    register(deployed, "a2", "x")
    fill(deployed, "a2", DEFAULTS["inbox_max"])
    reply = pairs(fcall(deployed, "agentfn_msg_broadcast", "p1", "x", "announce", "1"))
    assert list(pairs(reply["reached"])) == ["a1"] and reply["full"] == ["a2"]
    assert deployed.xlen(f"{INBOX}:a2") == DEFAULTS["inbox_max"]


def fill(r, agent_id, count):
    pipe = r.pipeline(transaction=False)
    for i in range(count):
        pipe.execute_command(
            "FCALL", "agentfn_msg_send", 1, ROOT, "filler", agent_id, "note", str(i)
        )
    pipe.execute()


def test_a_full_inbox_refuses_the_sender_and_keeps_every_unread_message(deployed, raw):
    register(deployed, "a1")
    fill(deployed, "a1", DEFAULTS["inbox_max"])
    first_id = deployed.xrange(f"{INBOX}:a1", count=1)[0][0]
    message = assert_refused(deployed, raw, "LIMIT", "agentfn_msg_send", "p1", "a1", "note", "{}")
    assert "full" in message
    # Reading does not make room (read-but-unacknowledged messages still count) ...
    (oldest,), _ = read(deployed, "a1", "COUNT", "1")
    assert oldest["id"] == first_id
    assert_refused(deployed, raw, "LIMIT", "agentfn_msg_send", "p1", "a1", "note", "{}")
    # ... acknowledging does.
    ack(deployed, "a1", first_id)
    newest = send(deployed, "p1", "a1", "note", '"last"')
    assert deployed.xlen(f"{INBOX}:a1") == DEFAULTS["inbox_max"]
    assert deployed.xrange(f"{INBOX}:a1", count=1)[0][0] != first_id
    assert deployed.xrevrange(f"{INBOX}:a1", count=1)[0][0] == newest


def test_expired_messages_are_skipped_and_removed_by_read(deployed):
    register(deployed, "a1")
    short = pairs(
        fcall(deployed, "agentfn_msg_send", "p1", "a1", "note", '"soon gone"', "TTL_MS", "30")
    )
    kept = send(deployed, "p1", "a1", "note", '"kept"')
    read_early = send(deployed, "p1", "a1", "note", '"read then expired"', "TTL_MS", "30")
    messages, _ = read(deployed, "a1")
    assert [m["id"] for m in messages] == [short["id"], kept, read_early]
    wait_until(deployed, int(short["expires_ms"]) + 30)
    # The expired ones (pending or not) are skipped and leave the inbox and the index.
    messages, _ = read(deployed, "a1")
    assert [m["id"] for m in messages] == [kept]
    assert [entry_id for entry_id, _ in deployed.xrange(f"{INBOX}:a1")] == [kept]
    assert deployed.zrange(EXPIRY, 0, -1) == [f"a1 {kept}"]
    assert deployed.xpending(f"{INBOX}:a1", "agentfn")["pending"] == 1


@pytest.mark.skipif(
    "agentfn_reap" not in load_specs(), reason="agentfn_reap is not in the library yet"
)
def test_reap_removes_expired_messages(deployed):
    register(deployed, "a1")
    register(deployed, "a2")
    gone = [
        pairs(fcall(deployed, "agentfn_msg_send", "p1", to, "note", "1", "TTL_MS", "30"))
        for to in ("a1", "a2")
    ]
    kept = send(deployed, "p1", "a1")
    read(deployed, "a1")
    wait_until(deployed, max(int(g["expires_ms"]) for g in gone))
    reply = pairs(fcall(deployed, "agentfn_reap"))
    assert reply["expired_messages"] == 2
    assert [entry_id for entry_id, _ in deployed.xrange(f"{INBOX}:a1")] == [kept]
    assert deployed.xlen(f"{INBOX}:a2") == 0
    assert deployed.zrange(EXPIRY, 0, -1) == [f"a1 {kept}"]
    assert deployed.xpending(f"{INBOX}:a1", "agentfn")["pending"] == 1


def test_wait_pair_wakes_for_a_message_sent_after_an_empty_read(deployed):
    """No lost wake-up: a message sent between the read and the XREAD BLOCK wakes the reader."""
    register(deployed, "a1")
    messages, (stream, last_id) = read(deployed, "a1")
    assert messages == [] and (stream, last_id) == (f"{INBOX}:a1", "0-0")
    early = send(deployed, "p1", "a1")  # sent after the read, before the block
    woke = deployed.xread({stream: last_id}, block=5000)
    assert [entry_id for entry_id, _ in woke[0][1]] == [early]
    (message,), (stream, last_id) = read(deployed, "a1")
    assert message["id"] == early and last_id == early
    ack(deployed, "a1", early)
    messages, (stream, last_id) = read(deployed, "a1")
    assert messages == [] and last_id == "0-0"  # the inbox is empty again
    # Blocking now waits for a new message only: nothing is there, so it times out.
    assert deployed.xread({stream: last_id}, block=20) == []
    late = send(deployed, "p1", "a1")
    assert deployed.xread({stream: last_id}, block=5000)[0][1][0][0] == late


def test_notification_is_published_and_a_reader_that_missed_it_still_reads(deployed):
    register(deployed, "a1")
    channel = f"{ROOT}:notify:inbox:a1"
    missed = send(deployed, "p1", "a1")  # nobody is subscribed yet
    pubsub = deployed.pubsub()
    pubsub.subscribe(channel)
    try:
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        heard = send(deployed, "p1", "a1")
        notification = pubsub.get_message(timeout=5)
        assert notification is not None and notification["type"] == "message"
        assert notification["channel"] == channel and notification["data"] == heard
    finally:
        pubsub.close()
    assert [m["id"] for m in read(deployed, "a1")[0]] == [missed, heard]


def test_reply_to_is_stored_and_returned(deployed):
    register(deployed, "a1")
    register(deployed, "a2")
    request = send(deployed, "a1", "a2", "question", '{"q":1}')
    answer = send(deployed, "a2", "a1", "answer", '{"a":1}', "REPLY_TO", request)
    ((message,), _) = read(deployed, "a1")
    assert (
        message["id"] == answer and message["reply_to"] == request and message["type"] == "answer"
    )


def test_read_of_an_inbox_that_does_not_exist_writes_nothing(deployed, raw):
    register(deployed, "a1")
    before = snapshot(raw)
    assert read(deployed, "a1") == ([], [f"{INBOX}:a1", "0-0"])
    assert snapshot(raw) == before
    # An unregistered agent has no inbox to read: register first.
    message = assert_refused(
        deployed, raw, "NOTFOUND", "agentfn_msg_read", "nobody", secret_of("nobody")
    )
    assert "register" in message


def test_a_wrong_secret_reads_and_acknowledges_nothing(deployed, raw):
    """Another agent's secret, or a fresh one, is DENIED: the inbox is its agent's alone."""
    register(deployed, "a1")
    register(deployed, "a2")
    sent = [send(deployed, "p1", "a1", "note", str(i)) for i in range(2)]
    read(deployed, "a1", "COUNT", "1")  # one pending, one undelivered
    for secret in (WRONG_SECRET, secret_of("a2")):
        for args in ([], ["COUNT", "10"], ["ACK", sent[0]]):
            message = assert_refused(
                deployed, raw, "DENIED", "agentfn_msg_read", "a1", secret, *args
            )
            assert "a1" in message and secret not in message
        assert_refused(deployed, raw, "DENIED", "agentfn_msg_ack", "a1", secret, ",".join(sent))
    assert [m["id"] for m in read(deployed, "a1", "COUNT", "10")[0]] == sent


BAD_INPUT = [
    # agentfn_msg_send: every argument and option
    ("BADARG", "agentfn_msg_send", ["p1", "a1", "note"]),
    ("BADARG", "agentfn_msg_send", ["", "a1", "note", "{}"]),
    ("BADARG", "agentfn_msg_send", ["p 1", "a1", "note", "{}"]),
    ("BADARG", "agentfn_msg_send", ["p" * 129, "a1", "note", "{}"]),
    ("BADARG", "agentfn_msg_send", ["p1", "", "note", "{}"]),
    ("BADARG", "agentfn_msg_send", ["p1", "a:1", "note", "{}"]),
    ("BADARG", "agentfn_msg_send", ["p1", "a1", "", "{}"]),
    ("BADARG", "agentfn_msg_send", ["p1", "a1", "no te", "{}"]),
    ("BADARG", "agentfn_msg_send", ["p1", "a1", "note", ""]),
    ("BADARG", "agentfn_msg_send", ["p1", "a1", "note", "{oops"]),
    ("LIMIT", "agentfn_msg_send", ["p1", "a1", "note", '"' + "x" * LIMITS["json_bytes"] + '"']),
    ("BADARG", "agentfn_msg_send", ["p1", "a1", "note", "{}", "REPLY_TO"]),
    ("BADARG", "agentfn_msg_send", ["p1", "a1", "note", "{}", "REPLY_TO", "m1"]),
    ("BADARG", "agentfn_msg_send", ["p1", "a1", "note", "{}", "REPLY_TO", "1-2-3"]),
    ("BADARG", "agentfn_msg_send", ["p1", "a1", "note", "{}", "TTL_MS", "0"]),
    ("BADARG", "agentfn_msg_send", ["p1", "a1", "note", "{}", "TTL_MS", "soon"]),
    (
        "BADARG",
        "agentfn_msg_send",
        ["p1", "a1", "note", "{}", "TTL_MS", str(LIMITS["duration_ms"] + 1)],
    ),
    ("BADARG", "agentfn_msg_send", ["p1", "a1", "note", "{}", "ALLOW_UNREGISTERED", "maybe"]),
    ("BADARG", "agentfn_msg_send", ["p1", "a1", "note", "{}", "TTL_MS", "10", "TTL_MS", "20"]),
    ("BADARG", "agentfn_msg_send", ["p1", "a1", "note", "{}", "PRIORITY", "high"]),
    ("NOTFOUND", "agentfn_msg_send", ["p1", "ghost", "note", "{}"]),
    ("NOTFOUND", "agentfn_msg_send", ["p1", "ghost", "note", "{}", "ALLOW_UNREGISTERED", "no"]),
    # agentfn_msg_broadcast
    ("BADARG", "agentfn_msg_broadcast", ["p1", "x", "note"]),
    ("BADARG", "agentfn_msg_broadcast", ["p{1}", "x", "note", "{}"]),
    ("BADARG", "agentfn_msg_broadcast", ["p1", "", "note", "{}"]),
    ("BADARG", "agentfn_msg_broadcast", ["p1", "x@y", "note", "{}"]),
    ("BADARG", "agentfn_msg_broadcast", ["p1", "x", "no:te", "{}"]),
    ("BADARG", "agentfn_msg_broadcast", ["p1", "x", "note", "not json"]),
    ("BADARG", "agentfn_msg_broadcast", ["p1", "x", "note", "{}", "TTL_MS", "-1"]),
    ("BADARG", "agentfn_msg_broadcast", ["p1", "x", "note", "{}", "REPLY_TO", "1-0"]),
    ("BADARG", "agentfn_msg_broadcast", ["p1", "x", "note", "{}", "TTL_MS"]),
    # agentfn_msg_read
    ("BADARG", "agentfn_msg_read", []),
    ("BADARG", "agentfn_msg_read", ["a1"]),
    ("BADARG", "agentfn_msg_read", ["a 1", S1]),
    ("BADARG", "agentfn_msg_read", ["a1", "COUNT", "10"]),
    ("BADARG", "agentfn_msg_read", ["a1", S1[:31]]),
    ("BADARG", "agentfn_msg_read", ["a1", S1 + "!"]),
    ("BADARG", "agentfn_msg_read", ["a1", S1, "COUNT", "0"]),
    ("BADARG", "agentfn_msg_read", ["a1", S1, "COUNT", str(LIMITS["message_batch"] + 1)]),
    ("BADARG", "agentfn_msg_read", ["a1", S1, "COUNT", "ten"]),
    ("BADARG", "agentfn_msg_read", ["a1", S1, "COUNT"]),
    ("BADARG", "agentfn_msg_read", ["a1", S1, "BLOCK", "10"]),
    ("BADARG", "agentfn_msg_read", ["a1", S1, "ACK", ""]),
    ("BADARG", "agentfn_msg_read", ["a1", S1, "ACK", "1-0,,2-0"]),
    ("BADARG", "agentfn_msg_read", ["a1", S1, "ACK", "first"]),
    (
        "LIMIT",
        "agentfn_msg_read",
        ["a1", S1, "ACK", ",".join(f"{i}-0" for i in range(LIMITS["message_batch"] + 1))],
    ),
    ("NOTFOUND", "agentfn_msg_read", ["ghost", S1]),
    ("DENIED", "agentfn_msg_read", ["a1", WRONG_SECRET]),
    ("DENIED", "agentfn_msg_read", ["a2", S1, "ACK", "1-0"]),
    # agentfn_msg_ack
    ("BADARG", "agentfn_msg_ack", ["a1", S1]),
    ("BADARG", "agentfn_msg_ack", ["a1", "1-0"]),
    ("BADARG", "agentfn_msg_ack", ["", S1, "1-0"]),
    ("BADARG", "agentfn_msg_ack", ["a{1}", S1, "1-0"]),
    ("BADARG", "agentfn_msg_ack", ["a1", "1-0", "1-0"]),
    ("BADARG", "agentfn_msg_ack", ["a1", S1, ""]),
    ("BADARG", "agentfn_msg_ack", ["a1", S1, "m1"]),
    ("BADARG", "agentfn_msg_ack", ["a1", S1, "1-0,,2-0"]),
    ("BADARG", "agentfn_msg_ack", ["a1", S1, ",1-0"]),
    ("BADARG", "agentfn_msg_ack", ["a1", S1, "1-0,"]),
    ("BADARG", "agentfn_msg_ack", ["a1", S1, "1-0,x"]),
    (
        "LIMIT",
        "agentfn_msg_ack",
        ["a1", S1, ",".join(f"{i}-0" for i in range(LIMITS["message_batch"] + 1))],
    ),
    ("BADARG", "agentfn_msg_ack", ["a1", S1, "1-0", "FORCE", "yes"]),
    ("NOTFOUND", "agentfn_msg_ack", ["ghost", S1, "1-0"]),
    ("DENIED", "agentfn_msg_ack", ["a1", WRONG_SECRET, "1-0"]),
    ("DENIED", "agentfn_msg_ack", ["a2", S1, "1-0"]),
]


@pytest.mark.parametrize("code,function,args", BAD_INPUT)
def test_bad_input_changes_nothing(deployed, raw, code, function, args):
    register(deployed, "a1", "x", "TTL_MS", "60000")
    register(deployed, "a2", "x", "TTL_MS", "60000")
    for i in range(3):
        send(deployed, "p1", "a1", "note", str(i))
    read(deployed, "a1", "COUNT", "1")  # one pending, two undelivered
    assert_refused(deployed, raw, code, function, *args)


GOOD_CALLS = [
    ("agentfn_msg_send", ["p1", "a1", "note", "{}"]),
    ("agentfn_msg_broadcast", ["p1", "x", "note", "{}"]),
    ("agentfn_msg_read", ["a1", S1]),
    ("agentfn_msg_ack", ["a1", S1, "1-0"]),
]


@pytest.mark.parametrize("function,args", GOOD_CALLS)
@pytest.mark.parametrize("keys", [(), ("agentfn:default",), ("agentfn:{a b}",), (ROOT, ROOT)])
def test_wrong_root_key_is_refused(deployed, raw, function, args, keys):
    register(deployed, "a1", "x")
    assert_refused(deployed, raw, "BADARG", function, *args, keys=keys)


@pytest.mark.parametrize("function,args", GOOD_CALLS)
def test_unmigrated_namespace_is_refused_with_version(deployed, raw, function, args):
    assert_refused(deployed, raw, "VERSION", function, *args, keys=("agentfn:{fresh}",))
