"""Contract tests of agentfn_task_submit_many, called with raw FCALL as any language would:
tasks created as agentfn_task_submit creates them, options shared by all, malformed calls
refused whole."""

from __future__ import annotations

import json

from .helpers import ROOT, assert_refused, fcall
from .tasks_helpers import get, register, submit

QUEUE = f"{ROOT}:queue"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def submit_many(r, *items, options=()):
    """agentfn_task_submit_many of (capability, payload) items: the ids it replied."""
    args = [len(items)] + [value for item in items for value in item] + list(options)
    return fcall(r, "agentfn_task_submit_many", *args)


def submitted_events(r):
    return [
        (fields["task"], fields["capability"], fields["state"])
        for _, fields in r.xrange(f"{ROOT}:events")
        if fields["type"] == "task.submitted"
    ]


def test_many_tasks_are_created_in_one_call_in_order(deployed):
    ids = submit_many(deployed, ("x", '{"n":1}'), ("y", "2"), ("x", '"three"'))
    first = int(ids[0][1:])
    assert ids == [f"t{first}", f"t{first + 1}", f"t{first + 2}"]
    assert deployed.hget(f"{ROOT}:meta", "task_seq") == str(first + 2)
    assert [get(deployed, task_id)["payload"] for task_id in ids] == ['{"n":1}', "2", '"three"']
    entries = {
        capability: [
            fields["task"] for _, fields in deployed.xrange(f"{QUEUE}:{capability}:normal")
        ]
        for capability in ("x", "y")
    }
    assert entries == {"x": [ids[0], ids[2]], "y": [ids[1]]}
    assert submitted_events(deployed) == [
        (ids[0], "x", "queued"),
        (ids[1], "y", "queued"),
        (ids[2], "x", "queued"),
    ]
    # The next single submit takes the next id.
    assert submit(deployed, "x")["id"] == f"t{first + 3}"


def test_each_task_is_the_one_agentfn_task_submit_would_create(deployed):
    register(deployed, "a1", "x")
    options = [
        "PRIORITY", "high", "MAX_ATTEMPTS", "5", "BACKOFF_MS", "10", "BACKOFF_MAX_MS", "20",
        "TIMEOUT_MS", "1000", "RETENTION_MS", "5000", "TO", "a1", "GRACE_MS", "7",
        "TRACEPARENT", TRACEPARENT,
    ]  # fmt: skip
    alone = submit(deployed, "x", '{"q":1}', *options)["id"]
    [one, two] = submit_many(deployed, ("x", '{"q":1}'), ("x", '{"q":1}'), options=options)
    records = [get(deployed, task_id) for task_id in (alone, one, two)]
    own = ("id", "entry", "created_ms", "due_ms")
    shared = [{k: v for k, v in record.items() if k not in own} for record in records]
    assert shared[0] == shared[1] == shared[2]
    assert shared[0]["stream"] == f"{ROOT}:direct:a1" and shared[0]["traceparent"] == TRACEPARENT
    direct = [fields["task"] for _, fields in deployed.xrange(f"{ROOT}:direct:a1")]
    assert direct == [alone, one, two]


def test_delayed_tasks_wait_in_the_delayed_set(deployed):
    ids = submit_many(deployed, ("x", "1"), ("x", "2"), options=["DELAY_MS", "60000"])
    assert [get(deployed, task_id)["state"] for task_id in ids] == ["delayed", "delayed"]
    assert [
        task_id for task_id, _ in deployed.zrange(f"{ROOT}:delayed", 0, -1, withscores=True)
    ] == ids
    assert not deployed.exists(f"{QUEUE}:x:normal")
    assert [state for _, _, state in submitted_events(deployed)] == ["delayed", "delayed"]


def test_a_malformed_call_is_refused_whole(deployed, raw):
    register(deployed, "a1", "x")
    good = ["x", '{"n":1}']
    cases = [
        ("BADARG", []),
        ("BADARG", ["0"]),
        ("BADARG", ["101", *good]),
        ("BADARG", ["x", *good]),
        ("BADARG", ["2", *good]),  # fewer items than the count
        ("BADARG", ["1", *good, *good]),  # more: not NAME value pairs
        ("BADARG", ["2", *good, "bad capability", "1"]),
        ("BADARG", ["2", *good, "x", "{bad"]),
        ("BADARG", ["2", *good, "x", ""]),
        ("BADARG", ["2", *good, *good, "IDEMPOTENCY_KEY", "k1"]),
        ("BADARG", ["2", *good, *good, "GRACE_MS", "5"]),  # GRACE_MS without TO
        ("BADARG", ["2", *good, *good, "PRIORITY", "urgent"]),
        ("BADARG", ["2", *good, *good, "COLOR", "red"]),
        ("BADARG", ["2", *good, *good, "TIMEOUT_MS"]),
        ("NOTFOUND", ["2", *good, *good, "TO", "nobody"]),
        ("LIMIT", ["2", "x", json.dumps("a" * 40_000), "x", json.dumps("b" * 30_000)]),
    ]
    for code, args in cases:
        assert_refused(deployed, raw, code, "agentfn_task_submit_many", *args)
    message = assert_refused(
        deployed, raw, "BADARG", "agentfn_task_submit_many", "1", *good, "IDEMPOTENCY_KEY", "k"
    )
    assert "agentfn_task_submit" in message
    # The largest call: submit_count items whose payloads total json_bytes.
    payload = json.dumps("p" * (65_536 // 100 - 2))
    assert len(submit_many(deployed, *[("x", payload)] * 100)) == 100
    assert deployed.xlen(f"{QUEUE}:x:normal") == 100
