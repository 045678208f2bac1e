"""Protocol 3.0: agent secrets and unguessable claim tokens (issue 11), at the contract level
(raw FCALL, as another language calls it) and through the client and the runtime.

An agent proves who it is with the secret it registered with (the library keeps its SHA-1
only); a task's attempt is settled only with the token its claim returned (derived from the
claimer's secret, kept as a SHA-1 only). Every refusal leaves the keyspace byte-for-byte
unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

import pytest
import redis

import agentfn
from agentfn import keys
from agentfn.library.migrate import migrate
from agentfn.replies import range_entries

from .agent_fixtures import STARTED, report_start
from .helpers import ROOT, assert_refused, fcall, pairs, wait_until

SECRET_A = "a" * 32
SECRET_B = "0123456789abcdef0123456789abcdef"
WRONG = "f" * 32


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def claim(r: redis.Redis, agent_id: str, secret: str) -> dict[str, Any]:
    """The one task a raw claim returns, as a dict."""
    reply = pairs(fcall(r, "agentfn_task_claim", agent_id, secret))
    (task,) = reply["tasks"]
    return pairs(task)


@pytest.fixture
def world(deployed: redis.Redis) -> redis.Redis:
    """Agent a1 (SECRET_A, capability cap) holds task t1 and has one message; b1 (SECRET_B) is
    live too; t2 is queued."""
    r = deployed
    fcall(r, "agentfn_agent_register", "a1", SECRET_A, "cap")
    fcall(r, "agentfn_agent_register", "b1", SECRET_B, "cap")
    fcall(r, "agentfn_task_submit", "cap", '{"n":1}')
    fcall(r, "agentfn_task_submit", "cap", '{"n":2}')
    fcall(r, "agentfn_msg_send", "b1", "a1", "note", '"hi"')
    assert claim(r, "a1", SECRET_A)["id"] == "t1"
    return r


# -- the secret ---------------------------------------------------------------------------------

SIX = [
    ("agentfn_agent_register", ["a1", WRONG, "cap"]),
    ("agentfn_agent_heartbeat", ["a1", WRONG]),
    ("agentfn_agent_deregister", ["a1", WRONG]),
    ("agentfn_task_claim", ["a1", WRONG]),
    ("agentfn_msg_read", ["a1", WRONG]),
    ("agentfn_msg_ack", ["a1", WRONG, "1-0"]),
]


@pytest.mark.parametrize(("function", "args"), SIX, ids=[name for name, _ in SIX])
def test_a_wrong_secret_is_denied_and_changes_nothing(world, raw, function, args):
    message = assert_refused(world, raw, "DENIED", function, *args)
    assert "a1" in message and WRONG not in message and SECRET_A not in message


@pytest.mark.parametrize(("function", "args"), SIX, ids=[name for name, _ in SIX])
@pytest.mark.parametrize("bad", ["", "short", "a" * 31, "a" * 129, "a" * 31 + "!", "a" * 31 + ":"])
def test_a_malformed_secret_is_badarg_naming_it_not_showing_it(world, raw, function, args, bad):
    bad_args = [args[0], bad, *args[2:]]
    message = assert_refused(world, raw, "BADARG", function, *bad_args)
    assert "secret" in message and (not bad or bad not in message)


@pytest.mark.parametrize(
    ("function", "args"),
    [("agentfn_msg_read", ["nobody", SECRET_A]), ("agentfn_msg_ack", ["nobody", SECRET_A, "1-0"])],
)
def test_an_inbox_is_read_and_acked_only_by_a_registered_agent(world, raw, function, args):
    fcall(world, "agentfn_msg_send", "b1", "nobody", "note", '"hi"', "ALLOW_UNREGISTERED", "yes")
    message = assert_refused(world, raw, "NOTFOUND", function, *args)
    assert "register it first" in message


def test_register_rules(world, raw):
    r = world
    first = pairs(fcall(r, "agentfn_agent_heartbeat", "a1", SECRET_A))
    # live, same secret: registers again (it keeps its registration time)
    again = pairs(fcall(r, "agentfn_agent_register", "a1", SECRET_A, "cap,other"))
    assert again["registered_ms"] == first["registered_ms"] and again["capabilities"] == "cap,other"
    assert "secret" not in again and "secret_sha1" not in again
    # live, another secret: refused, naming the deadline and what to do
    message = assert_refused(r, raw, "DENIED", "agentfn_agent_register", "a1", SECRET_B, "cap")
    assert "until" in message and "deregister" in message
    # deregistered: the id is free for any secret
    fcall(r, "agentfn_agent_deregister", "a1", SECRET_A)
    fcall(r, "agentfn_agent_register", "a1", SECRET_B, "cap")
    assert_refused(r, raw, "DENIED", "agentfn_agent_heartbeat", "a1", SECRET_A)
    # past its deadline (not swept yet): a new process takes it over with a new secret
    expires = int(
        pairs(fcall(r, "agentfn_agent_register", "a1", SECRET_B, "cap", "TTL_MS", 1))["expires_ms"]
    )
    wait_until(r, expires)
    fcall(r, "agentfn_agent_register", "a1", SECRET_A, "cap")
    assert_refused(r, raw, "DENIED", "agentfn_agent_heartbeat", "a1", SECRET_B)
    assert r.hget(f"{ROOT}:agent:a1", "secret_sha1") == sha1(SECRET_A)


def test_a_lapsed_agent_whose_record_is_kept_still_reads_its_inbox(world):
    r = world
    expires = int(
        pairs(fcall(r, "agentfn_agent_heartbeat", "a1", SECRET_A, "TTL_MS", 1))["expires_ms"]
    )
    wait_until(r, expires)
    fcall(r, "agentfn_reap")
    assert r.hget(f"{ROOT}:agent:a1", "status") == "lapsed"
    read = pairs(fcall(r, "agentfn_msg_read", "a1", SECRET_A))
    assert [pairs(m)["type"] for m in read["messages"]] == ["note"]


# -- claim tokens ---------------------------------------------------------------------------------


def test_the_token_derives_from_the_secret_and_next_from_the_token(world):
    r = world
    t1 = pairs(fcall(r, "agentfn_task_get", "t1"))
    assert t1["attempt"] == "1"
    token = "1-" + sha1(f"{SECRET_A}:t1:1")
    done = pairs(fcall(r, "agentfn_task_complete", "t1", token, "null", "NEXT", "1"))
    (following,) = pairs(done["next"])["tasks"]
    following = pairs(following)
    assert following["id"] == "t2" and following["token"] == "1-" + sha1(f"{token}:t2:1")
    fcall(r, "agentfn_task_complete", "t2", following["token"], "null")


@pytest.mark.parametrize(
    "function", ["agentfn_task_complete", "agentfn_task_fail", "agentfn_task_extend"]
)
def test_forged_and_other_agents_tokens_are_refused(world, raw, function):
    r = world
    mine = claim(r, "b1", SECRET_B)  # b1 holds t2 at attempt 1
    third = [] if function == "agentfn_task_extend" else ["null" if "complete" in function else "e"]
    # the attempt number alone (the 2.0 token), or not the shape: BADARG, never echoed
    for bad in ["1", "1-abc", "01-" + "0" * 40, "1-" + "g" * 40, "-1-" + "0" * 40]:
        assert_refused(r, raw, "BADARG", function, "t2", bad, *third)
    # the right attempt with other hex, or a1's token for t1: DENIED
    forged = "1-" + "0" * 40
    a1_token = "1-" + sha1(f"{SECRET_A}:t1:1")
    for token in [forged, a1_token]:
        message = assert_refused(r, raw, "DENIED", function, "t2", token, *third)
        assert "t2" in message and token not in message
    assert mine["token"] != a1_token


def test_a_stale_token_is_stale(world, raw):
    r = world
    first = "1-" + sha1(f"{SECRET_A}:t1:1")
    fcall(r, "agentfn_task_fail", "t1", first, "try again")  # retried (backoff 0: queued)
    assert r.hget(f"{ROOT}:task:t1", "state") in ("queued", "delayed")
    assert_refused(r, raw, "STALE", "agentfn_task_extend", "t1", first)
    while r.hget(f"{ROOT}:task:t1", "state") == "delayed":
        wait_until(r, int(r.hget(f"{ROOT}:task:t1", "due_ms")))
        fcall(r, "agentfn_reap")
    claimed = claim(r, "a1", SECRET_A)
    if claimed["id"] != "t1":  # t2 came first: settle it, then t1
        fcall(r, "agentfn_task_complete", claimed["id"], claimed["token"], "null")
        claimed = claim(r, "a1", SECRET_A)
    assert claimed["id"] == "t1" and claimed["attempt"] == "2"
    message = assert_refused(r, raw, "STALE", "agentfn_task_complete", "t1", first, "null")
    assert first not in message
    fcall(r, "agentfn_task_complete", "t1", claimed["token"], "null")
    # the attempt ended: even its own token no longer settles it
    assert_refused(r, raw, "STALE", "agentfn_task_complete", "t1", claimed["token"], "null")


def _stored_values(r: redis.Redis) -> list[str]:
    """Every key name, member, field and value of the server, as text."""
    found: list[str] = []
    for key in r.scan_iter(count=1000):
        found.append(key)
        kind = r.type(key)
        if kind == "hash":
            found.extend(x for item in r.hgetall(key).items() for x in item)
        elif kind == "string":
            found.append(r.get(key))
        elif kind == "zset":
            found.extend(r.zrange(key, 0, -1))
        elif kind == "set":
            found.extend(r.smembers(key))
        elif kind == "list":
            found.extend(r.lrange(key, 0, -1))
        elif kind == "stream":
            for entry_id, fields in range_entries(r.xrange(key)):
                found.append(entry_id)
                found.extend(x for item in fields.items() for x in item)
    return found


def test_neither_secrets_nor_tokens_are_stored(world):
    r = world
    done = pairs(
        fcall(
            r, "agentfn_task_complete", "t1", "1-" + sha1(f"{SECRET_A}:t1:1"), "null", "NEXT", "1"
        )
    )
    next_token = pairs(pairs(done["next"])["tasks"][0])["token"]
    fcall(r, "agentfn_task_extend", "t2", next_token)
    stored = _stored_values(r)
    for secret in [SECRET_A, SECRET_B, "1-" + sha1(f"{SECRET_A}:t1:1"), next_token]:
        assert not [value for value in stored if secret in value], "stored in the keyspace"
    assert sha1(SECRET_A) in stored and sha1(next_token) in stored  # only their hashes


# -- migration 0004 ---------------------------------------------------------------------------------


def test_migration_0004_hands_a_pre_3_0_agents_task_to_a_3_0_agent(deployed):
    r = deployed
    fcall(r, "agentfn_agent_register", "old", SECRET_A, "cap", "TTL_MS", 3_600_000)
    fcall(r, "agentfn_task_submit", "cap", '{"n":1}')
    old_token = claim(r, "old", SECRET_A)["token"]
    # as 2.0 left it: no secret_sha1, no token_sha1, schema 3
    r.hdel(f"{ROOT}:agent:old", "secret_sha1")
    r.hdel(f"{ROOT}:task:t1", "token_sha1")
    r.hset(keys.meta("default"), "schema_version", 3)

    assert [m.number for m in migrate(r, "default")] == [4]
    assert [m.number for m in migrate(r, "default")] == []
    # the old attempt cannot be settled (no token proves it) ...
    assert_refused_plain(r, "DENIED", "agentfn_task_complete", "t1", old_token, "null")
    # ... and the old agent lapses at the next sweep: its task is queued again, nothing lost
    fcall(r, "agentfn_agent_register", "new", SECRET_B, "cap")
    assert r.hget(f"{ROOT}:agent:old", "status") == "lapsed"
    assert r.hget(f"{ROOT}:task:t1", "state") == "queued"
    task = claim(r, "new", SECRET_B)
    assert (task["id"], task["attempt"], task["payload"]) == ("t1", "2", '{"n":1}')
    fcall(r, "agentfn_task_complete", "t1", task["token"], '{"ok":true}')
    assert r.hget(f"{ROOT}:task:t1", "result") == '{"ok":true}'
    # the old id is free again for a 3.0 process
    fcall(r, "agentfn_agent_register", "old", SECRET_A, "cap")


def assert_refused_plain(r: redis.Redis, code: str, function: str, *args: Any) -> None:
    with pytest.raises(redis.ResponseError, match=f"^{code} "):
        fcall(r, function, *args)


# -- the client ----------------------------------------------------------------------------------


def test_the_client_generates_remembers_and_hides_the_secret(client: agentfn.Client, deployed):
    info = client.agent_register("c1", ["cap"])
    assert info.secret and len(info.secret) == 32 and info.secret not in repr(info)
    assert deployed.hget(f"{ROOT}:agent:c1", "secret_sha1") == sha1(info.secret)
    assert client.agent_heartbeat("c1").secret is None
    client.send("c1", "c1", "note", 1)
    assert [m.type for m in client.read_messages("c1")] == ["note"]

    other = agentfn.Client(deployed, "default")
    with pytest.raises(agentfn.AgentfnError, match="no secret for agent c1"):
        other.claim("c1")
    with pytest.raises(agentfn.Denied):
        other.claim("c1", secret=WRONG)
    with pytest.raises(agentfn.Denied):
        other.agent_register("c1", ["cap"])  # a fresh secret while c1 is live
    assert other.claim("c1", secret=info.secret).tasks == []
    assert client.agent_register("c1", ["cap"]).secret == info.secret  # remembered, reused
    assert client.agent_deregister("c1") == 0


def test_tokens_are_strings_through_client_and_batch(client: agentfn.Client):
    client.agent_register("c1", ["cap"])
    client.submit("cap", {"n": 1})
    client.submit("cap", {"n": 2})
    (task,) = client.claim("c1").tasks
    assert isinstance(task.token, str) and task.token.startswith("1-") and len(task.token) == 42
    batch = agentfn.Batch(client)
    batch.extend(task.id, task.token)
    batch.complete(task.id, task.token, "done", next=1)
    extended, completed = batch.execute()
    assert not extended.canceled and completed.state == "completed"
    (following,) = completed.next.tasks
    with pytest.raises(agentfn.Denied):
        client.complete(following.id, task.token.split("-")[0] + "-" + "0" * 40, None)
    assert client.complete(following.id, following.token, None).state == "completed"


# -- the runtime ---------------------------------------------------------------------------------


class _Seen(logging.Handler):
    """Sets an event when a log record contains ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.event = text, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


def _echo_agent(client: agentfn.Client, **options: Any) -> agentfn.Agent:
    agent = agentfn.Agent(client, "restarted", **options)

    @agent.handler("echo")
    def echo(task: agentfn.TaskContext) -> Any:
        report_start(task)
        return task.payload

    return agent


def test_a_restarted_agent_waits_for_its_previous_registration_to_end(client, deployed):
    previous = agentfn.Client(deployed, "default")
    previous.agent_register("restarted", ["echo"], ttl_ms=600_000)  # the old process
    seen = _Seen("still registered by a previous process")
    logger = logging.getLogger("agentfn.agent")
    logger.addHandler(seen)
    agent = _echo_agent(agentfn.Client(deployed, "default"), register_wait_s=30)
    thread = threading.Thread(target=agent.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    try:
        assert seen.event.wait(10), "the agent did not report the wait"
        assert not agent.ready.is_set()
        previous.agent_deregister("restarted")  # the event wakes it: no wait for the deadline
        assert agent.ready.wait(10)
        task_id = client.submit("echo", {"n": 1})
        assert deployed.blpop([STARTED], timeout=10) == (STARTED, f"restarted:{task_id}:1")
        secret_sha1 = deployed.hget(f"{ROOT}:agent:restarted", "secret_sha1")
        assert secret_sha1 != sha1(previous.agent_secrets.get("restarted", ""))
    finally:
        logger.removeHandler(seen)
        agent.stop(now=True)
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_restarted_agent_gives_up_after_its_wait(deployed):
    previous = agentfn.Client(deployed, "default")
    previous.agent_register("restarted", ["echo"], ttl_ms=600_000)
    before = snapshot_agent(deployed)
    agent = _echo_agent(agentfn.Client(deployed, "default"), register_wait_s=0)
    with pytest.raises(agentfn.Denied, match="live under another secret"):
        agent.run()
    assert snapshot_agent(deployed) == before


def snapshot_agent(r: redis.Redis) -> dict[str, str]:
    return r.hgetall(f"{ROOT}:agent:restarted")


def test_an_agent_whose_id_was_taken_over_stops(deployed):
    """It lapsed (here: deregistered) and another process registered the id with its own secret
    in the same MULTI: the next heartbeat or claim is DENIED, and the run stops with it."""
    mine = agentfn.Client(deployed, "default")
    agent = _echo_agent(mine, ttl_ms=2_000, heartbeat_interval_ms=50)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            agent.run(handle_signals=False)
        except BaseException as error:  # noqa: BLE001 - the test checks it
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert agent.ready.wait(10)
    takeover = deployed.pipeline(transaction=True)
    takeover.fcall(
        "agentfn_agent_deregister", 1, ROOT, "restarted", mine.agent_secrets["restarted"]
    )
    takeover.fcall("agentfn_agent_register", 1, ROOT, "restarted", SECRET_B, "echo")
    takeover.execute()
    thread.join(timeout=10)
    assert not thread.is_alive() and len(outcome) == 1 and isinstance(outcome[0], agentfn.Denied)
    assert deployed.hget(f"{ROOT}:agent:restarted", "secret_sha1") == sha1(SECRET_B)
