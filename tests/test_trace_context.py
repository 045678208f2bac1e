"""The TRACEPARENT option: stored with a task, a message or a workflow, handed back by every
claim and read, refused (keyspace unchanged) unless it is a strict W3C traceparent."""

from __future__ import annotations

import pytest

from .helpers import ROOT, assert_refused, fcall, pairs, secret_of
from .tasks_helpers import claim, complete, fail, get, register, submit
from .workflows_helpers import create, wf_get

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"

BAD_VALUES = [
    "",
    "garbage",
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version other than 00
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # 31 hex
    "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",  # 33 hex
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",  # 15 hex
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902g7-01",  # not hex
    " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n",
]

CALLS = {
    "agentfn_task_submit": ["x", "{}"],
    "agentfn_msg_send": ["p1", "a1", "note", "{}"],
    "agentfn_msg_broadcast": ["p1", "x", "note", "{}"],
    "agentfn_wf_create": ['{"steps":[{"id":"a","capability":"x"}]}'],
}


@pytest.mark.parametrize("value", BAD_VALUES)
@pytest.mark.parametrize("function", sorted(CALLS))
def test_a_bad_traceparent_is_refused_before_any_write(deployed, raw, function, value):
    register(deployed, "a1", "x", "TTL_MS", "60000")
    submit(deployed, "x", "{}", "TRACEPARENT", TRACEPARENT)
    message = assert_refused(
        deployed, raw, "BADARG", function, *CALLS[function], "TRACEPARENT", value
    )
    assert "TRACEPARENT" in message


def test_a_task_keeps_its_traceparent_through_claims_retries_and_get(deployed, raw):
    register(deployed, "a1", "x")
    traced = submit(deployed, "x", "{}", "TRACEPARENT", TRACEPARENT, "BACKOFF_MS", "0")["id"]
    first = claim(deployed, "a1")["tasks"][0]
    assert (first["id"], first["traceparent"]) == (traced, TRACEPARENT)
    # The NEXT claim of a fail (retried at once: the same task, attempt 2), then of a complete.
    retried = pairs(
        pairs(fail(deployed, traced, first["token"], "boom", "NEXT", "1")["next"])["tasks"][0]
    )
    assert (retried["id"], retried["attempt"], retried["traceparent"]) == (traced, "2", TRACEPARENT)
    plain = submit(deployed, "x", "{}")["id"]
    assert b"traceparent" not in raw.hgetall(f"{ROOT}:task:{plain}")  # nothing stored without it
    after = pairs(
        pairs(complete(deployed, traced, retried["token"], '"ok"', "NEXT", "1")["next"])["tasks"][0]
    )
    assert (after["id"], after["traceparent"]) == (plain, "")
    assert get(deployed, traced)["traceparent"] == TRACEPARENT
    assert get(deployed, plain)["traceparent"] == ""


def test_a_direct_task_returns_its_traceparent(deployed):
    register(deployed, "a1", "x")
    submit(deployed, "y", "{}", "TO", "a1", "TRACEPARENT", OTHER)
    assert claim(deployed, "a1")["tasks"][0]["traceparent"] == OTHER


def test_a_message_keeps_its_traceparent_and_an_untraced_one_stores_none(deployed, raw):
    register(deployed, "a1", "x")
    register(deployed, "a2", "x")
    traced = pairs(
        fcall(deployed, "agentfn_msg_send", "p1", "a1", "note", "1", "TRACEPARENT", OTHER)
    )
    plain = pairs(fcall(deployed, "agentfn_msg_send", "p1", "a1", "note", "2"))
    reached = pairs(
        fcall(deployed, "agentfn_msg_broadcast", "p1", "x", "hi", "3", "TRACEPARENT", TRACEPARENT)
    )["reached"]
    assert len(reached) == 4
    entries = dict(raw.xrange(f"{ROOT}:inbox:a1"))
    assert b"traceparent" not in entries[plain["id"].encode()]
    messages = [
        pairs(m)
        for m in pairs(fcall(deployed, "agentfn_msg_read", "a1", secret_of("a1")))["messages"]
    ]
    assert [(m["id"], m["traceparent"]) for m in messages] == [
        (traced["id"], OTHER),
        (plain["id"], ""),
        (reached[1], TRACEPARENT),
    ]
    (message,) = [
        pairs(m)
        for m in pairs(fcall(deployed, "agentfn_msg_read", "a2", secret_of("a2")))["messages"]
    ]
    assert message["traceparent"] == TRACEPARENT


def test_every_step_of_a_workflow_carries_its_traceparent_even_after_a_signal(deployed):
    register(deployed, "a1", "x")
    definition = {
        "steps": [
            {"id": "a", "capability": "x"},
            {"id": "b", "capability": "x", "depends_on": ["a"]},
        ]
    }
    workflow_id = create(deployed, definition, "TRACEPARENT", TRACEPARENT)["id"]
    assert wf_get(deployed, workflow_id, "STEPS", "no")[0]["traceparent"] == TRACEPARENT
    first = claim(deployed, "a1")["tasks"][0]
    assert (first["step"], first["traceparent"]) == ("a", TRACEPARENT)
    second = pairs(
        pairs(complete(deployed, first["id"], first["token"], '"ok"', "NEXT", "1")["next"])[
            "tasks"
        ][0]
    )
    assert (second["step"], second["traceparent"]) == ("b", TRACEPARENT)
    complete(deployed, second["id"], second["token"], "null", "INPUT_REQUIRED", '"more?"')
    signaled = pairs(fcall(deployed, "agentfn_wf_signal", workflow_id, "b", '"yes"'))
    assert get(deployed, signaled["task"])["traceparent"] == TRACEPARENT
    plain = create(deployed, {"steps": [{"id": "a", "capability": "x"}]})["id"]
    assert wf_get(deployed, plain, "STEPS", "no")[0]["traceparent"] == ""
