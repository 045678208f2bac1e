"""Contract tests of agentfn_task_complete_many, called with raw FCALL as any language would:
items refused one by one in a read phase, malformed calls refused whole, NEXT and its tokens."""

from __future__ import annotations

import json

from .helpers import ROOT, assert_refused, fcall, pairs, snapshot, wait_until
from .secret_helpers import claim_token, token_of
from .tasks_helpers import claim, get, held, register, submit
from .workflows_helpers import CAPABILITY, create, states

QUEUE = f"{ROOT}:queue"


def complete_many(r, *items, options=()):
    """agentfn_task_complete_many of (task_id, token, result) items: the reply with its results
    as a list of (id, state, error) and its next claim decoded."""
    args = [len(items)] + [value for item in items for value in item] + list(options)
    reply = pairs(fcall(r, "agentfn_task_complete_many", *args))
    flat = reply["results"]
    reply["results"] = [tuple(flat[i : i + 3]) for i in range(0, len(flat), 3)]
    if "next" in reply:
        reply["next"] = pairs(reply["next"])
        reply["next"]["tasks"] = [pairs(task) for task in reply["next"]["tasks"]]
    return reply


def running(r, agent_id, capability, count):
    """Submit and claim `count` tasks; their ids."""
    for n in range(count):
        submit(r, capability, json.dumps({"n": n}))
    return [task["id"] for task in claim(r, agent_id, "COUNT", str(count))["tasks"]]


def test_many_attempts_complete_in_one_call(deployed):
    register(deployed, "a1", "x,y")
    ids = running(deployed, "a1", "x", 2) + running(deployed, "a1", "y", 1)
    reply = complete_many(
        deployed, *[(task_id, token_of(task_id, 1), json.dumps({"r": task_id})) for task_id in ids]
    )
    assert reply == {"results": [(task_id, "completed", "") for task_id in ids]}
    for task_id in ids:
        record = get(deployed, task_id)
        assert record["state"] == "completed" and record["result"] == json.dumps({"r": task_id})
        assert record["entry"] == "" and deployed.pttl(f"{ROOT}:task:{task_id}") > 0
    assert deployed.zcard(f"{ROOT}:leases") == 0 and held(deployed, "a1") == []
    for capability in ("x", "y"):
        assert deployed.xpending(f"{QUEUE}:{capability}:normal", "agentfn")["pending"] == 0
        assert deployed.zscore(f"{ROOT}:trim", f"{QUEUE}:{capability}:normal") is not None
    completed = [
        fields["task"]
        for _, fields in deployed.xrange(f"{ROOT}:events")
        if fields["type"] == "task.completed"
    ]
    assert completed == ids  # one event per task, in the order given


def test_each_item_is_refused_alone_and_the_others_complete(deployed, raw):
    register(deployed, "a1", "x")
    t1, t2, t3, t4 = running(deployed, "a1", "x", 4)
    fcall(deployed, "agentfn_task_cancel", t4)  # canceled while running: the reply says so
    untouched = {key: value for key, value in snapshot(raw).items() if b"task:t2" in key}
    reply = complete_many(
        deployed,
        (t1, token_of(t1, 1), '"one"'),
        (t2, token_of(t2, 2), '"stale"'),  # an attempt it is not at
        (t3, claim_token("w" * 32, t3, 1), '"forged"'),  # the right attempt, another key
        ("t99", token_of("t99", 1), '"ghost"'),
        (t4, token_of(t4, 1), '"late"'),
    )
    results = {
        task_id: (state, error.split(" ", 1)[0]) for task_id, state, error in reply["results"]
    }
    assert results == {
        t1: ("completed", ""),
        t2: ("refused", "STALE"),
        t3: ("refused", "DENIED"),
        "t99": ("refused", "NOTFOUND"),
        t4: ("canceled", ""),
    }
    assert token_of(t3, 1) not in json.dumps(reply["results"])  # messages never show a token
    assert get(deployed, t1)["state"] == "completed"
    assert get(deployed, t2)["state"] == get(deployed, t3)["state"] == "running"
    assert get(deployed, t4)["state"] == "canceled" and get(deployed, t4)["result"] == ""
    assert {key: value for key, value in snapshot(raw).items() if b"task:t2" in key} == untouched
    assert held(deployed, "a1") == [t2, t3]
    # The refused ones are still their holder's to complete.
    reply = complete_many(deployed, (t2, token_of(t2, 1), "1"), (t3, token_of(t3, 1), "2"))
    assert [state for _, state, _ in reply["results"]] == ["completed", "completed"]
    # A second completion of the same attempt is refused (STALE), not applied twice.
    reply = complete_many(deployed, (t1, token_of(t1, 1), '"again"'))
    assert reply["results"][0][:2] == (t1, "refused") and reply["results"][0][2].startswith("STALE")
    assert get(deployed, t1)["result"] == '"one"'


def test_malformed_calls_are_refused_whole_and_change_nothing(deployed, raw):
    register(deployed, "a1", "x")
    register(deployed, "a2", "x")
    t1, t2 = running(deployed, "a1", "x", 2)
    [t3] = running(deployed, "a2", "x", 1)
    good = [t1, token_of(t1, 1), '"ok"']
    second = [t2, token_of(t2, 1), '"ok"']
    cases = [
        ("BADARG", []),
        ("BADARG", ["0"]),
        ("BADARG", ["101", *good]),
        ("BADARG", ["x", *good]),
        ("BADARG", ["2", *good]),  # fewer items than the count
        ("BADARG", ["1", *good, *second]),  # more: not NAME value pairs
        ("BADARG", ["2", *good, t2, "1", '"ok"']),  # the attempt alone as a token
        ("BADARG", ["2", *good, t2, token_of(t2, 1), "{bad"]),
        ("BADARG", ["2", *good, "a:b", token_of(t2, 1), '"ok"']),
        ("BADARG", ["2", *good, *good]),  # a task named twice
        ("BADARG", ["2", *good, *second, "COLOR", "red"]),
        ("BADARG", ["2", *good, *second, "INPUT_REQUIRED", "{}"]),
        ("BADARG", ["2", *good, *second, "NEXT", "51"]),
        ("BADARG", ["2", *good, *second, "NEXT"]),
        ("BADARG", ["2", *good, t3, token_of(t3, 1, "a2"), '"ok"', "NEXT", "1"]),  # two agents
        (
            "LIMIT",
            [
                "2",
                t1,
                token_of(t1, 1),
                json.dumps("a" * 40_000),
                t2,
                token_of(t2, 1),
                json.dumps("b" * 30_000),
            ],
        ),  # fmt: skip
    ]
    for code, args in cases:
        assert_refused(deployed, raw, code, "agentfn_task_complete_many", *args)
    assert held(deployed, "a1") == [t1, t2]
    # Two agents' items complete together without NEXT.
    reply = complete_many(deployed, tuple(good), (t3, token_of(t3, 1, "a2"), '"ok"'))
    assert [state for _, state, _ in reply["results"]] == ["completed", "completed"]


def test_next_claims_for_the_holder_with_tokens_from_the_first_accepted_item(deployed, raw):
    register(deployed, "a1", "x")
    t1, t2 = running(deployed, "a1", "x", 2)
    for n in range(3):
        submit(deployed, "x", json.dumps({"next": n}))
    reply = complete_many(
        deployed,
        ("t99", token_of("t99", 1), '"ghost"'),  # refused: not the key
        (t1, token_of(t1, 1), '"a"'),
        (t2, token_of(t2, 1), '"b"'),
        options=("NEXT", "2", "LEASE_MS", "5000"),
    )
    assert [state for _, state, _ in reply["results"]] == ["refused", "completed", "completed"]
    claimed = reply["next"]["tasks"]
    assert [task["id"] for task in claimed] == ["t3", "t4"]
    for task in claimed:  # derived from the token of the first accepted item, t1's
        assert task["token"] == claim_token(token_of(t1, 1), task["id"], 1)
    assert reply["next"]["wait"] == []  # as many as asked: no wait list
    # They are the agent's, with the lease asked for; the tokens complete them.
    assert held(deployed, "a1") == ["t3", "t4"]
    for task in claimed:
        started = int(get(deployed, task["id"])["started_ms"])
        assert int(task["lease_deadline_ms"]) == started + 5000
    reply = complete_many(
        deployed, *[(task["id"], task["token"], "null") for task in claimed], options=("NEXT", "5")
    )
    assert [state for _, state, _ in reply["results"]] == ["completed", "completed"]
    assert [task["id"] for task in reply["next"]["tasks"]] == ["t5"] and reply["next"]["wait"]
    # No item accepted: nothing is claimed, and the reply has no next.
    submit(deployed, "x", "{}")
    reply = complete_many(deployed, (t1, token_of(t1, 1), '"again"'), options=("NEXT", "1"))
    assert "next" not in reply and held(deployed, "a1") == ["t5"]


def test_next_refuses_a_lapsed_agent_before_writing(deployed, raw):
    agent = register(deployed, "a1", "x", "TTL_MS", "500")
    [t1] = running(deployed, "a1", "x", 1)
    wait_until(deployed, int(agent["expires_ms"]))
    item = (t1, token_of(t1, 1), '"ok"')
    assert_refused(deployed, raw, "LAPSED", "agentfn_task_complete_many", 1, *item, "NEXT", "1")
    assert complete_many(deployed, item)["results"] == [(t1, "completed", "")]


def test_a_workflow_step_moves_on_and_one_per_call(deployed, raw):
    register(deployed, "a1", f"{CAPABILITY},x")
    create(
        deployed,
        {
            "steps": [
                {"id": "a", "capability": CAPABILITY},
                {"id": "b", "capability": CAPABILITY},
                {"id": "c", "capability": CAPABILITY, "depends_on": ["a", "b"]},
            ]
        },
    )
    a, b = claim(deployed, "a1", "COUNT", "2")["tasks"]
    [plain] = running(deployed, "a1", "x", 1)
    items = [(task["id"], task["token"], json.dumps(task["step"])) for task in (a, b)]
    # Two steps in one call: refused whole (a step's hook may enqueue a workflow's every step).
    assert_refused(deployed, raw, "LIMIT", "agentfn_task_complete_many", 2, *items[0], *items[1])
    reply = complete_many(deployed, items[0], (plain, token_of(plain, 1), '"plain"'))
    assert [state for _, state, _ in reply["results"]] == ["completed", "completed"]
    assert complete_many(deployed, items[1])["results"][0][1] == "completed"
    assert states(deployed, "w1") == {"a": "completed", "b": "completed", "c": "queued"}
    [joined] = claim(deployed, "a1", "COUNT", "2")["tasks"]
    assert joined["step"] == "c" and json.loads(joined["inputs"]) == {"a": "a", "b": "b"}
