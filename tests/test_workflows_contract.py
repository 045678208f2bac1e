"""Contract tests: the workflow and context functions called with raw FCALL, as any language would.

Steps are driven with the task functions (claim, complete, fail, cancel), also as raw FCALL.
"""

from __future__ import annotations

import json

import pytest
import redis

from agentfn.constants import LIMITS, WorkflowPolicy

from .helpers import ROOT, assert_refused, fcall, pairs
from .tasks_helpers import claim, complete, fail, get, register
from .workflows_helpers import CAPABILITY, create, states, steps, wf_get


def claim_all(r: redis.Redis, agent: str = "a1") -> dict[str, dict]:
    """Claim every ready task (in claims of the largest COUNT); {step id: claimed task}."""
    claimed: dict[str, dict] = {}
    while True:
        tasks = claim(r, agent, "COUNT", LIMITS["claim_count"])["tasks"]
        claimed.update((task["step"], task) for task in tasks)
        if len(tasks) < LIMITS["claim_count"]:
            return claimed


def finish(r: redis.Redis, task: dict, result: object = None) -> dict:
    text = json.dumps({"step": task["step"]} if result is None else result)
    return complete(r, task["id"], task["token"], text)


@pytest.fixture
def r(deployed):
    register(deployed, "a1", CAPABILITY)
    return deployed


VALID_STEP = {"id": "a", "capability": CAPABILITY}


@pytest.mark.parametrize(
    "definition, code, fragment",
    [
        ("not json", "BADARG", "not valid JSON"),
        ([VALID_STEP], "BADARG", "JSON object"),
        ({}, "BADARG", "steps must be an array"),
        ({"steps": []}, "BADARG", "no steps"),
        ({"steps": {"a": VALID_STEP}}, "BADARG", "steps must be an array"),
        ({"steps": [VALID_STEP], "extra": 1}, "BADARG", 'unknown field "extra"'),
        ({"steps": [1]}, "BADARG", "steps[0] must be a JSON object"),
        ({"steps": [{"capability": CAPABILITY}]}, "BADARG", "steps[0].id must be a string"),
        (
            {"steps": [{"id": "a b", "capability": CAPABILITY}]},
            "BADARG",
            "steps[0].id may contain only",
        ),
        ({"steps": [{"id": "_a", "capability": CAPABILITY}]}, "BADARG", "may not start with _"),
        ({"steps": [{"id": "a"}]}, "BADARG", "step a: capability must be a string"),
        (
            {"steps": [{"id": "a", "capability": "no spaces"}]},
            "BADARG",
            "capability may contain only",
        ),
        ({"steps": [{**VALID_STEP, "depends": ["b"]}]}, "BADARG", 'unknown field "depends"'),
        ({"steps": [{**VALID_STEP, "depends_on": "b"}]}, "BADARG", "depends_on must be an array"),
        (
            {"steps": [{**VALID_STEP, "depends_on": [1]}]},
            "BADARG",
            "depends_on[0] must be a string",
        ),
        (
            {"steps": [{**VALID_STEP, "max_attempts": 0}]},
            "BADARG",
            "max_attempts must be an integer",
        ),
        ({"steps": [{**VALID_STEP, "timeout_ms": 1.5}]}, "BADARG", "timeout_ms must be an integer"),
        ({"steps": [{**VALID_STEP, "backoff_ms": -1}]}, "BADARG", "backoff_ms must be an integer"),
        ({"steps": [{**VALID_STEP, "priority": "urgent"}]}, "BADARG", "priority must be one of"),
        ({"steps": [VALID_STEP, VALID_STEP]}, "BADARG", "step id a is used twice"),
        ({"steps": steps(("a", ["ghost"]))}, "BADARG", "step a depends on unknown step ghost"),
        ({"steps": steps(("a", []), ("b", ["a", "a"]))}, "BADARG", "lists dependency a twice"),
        ({"steps": [VALID_STEP], "policy": "retry"}, "BADARG", "policy must be one of"),
        ({"steps": [VALID_STEP], "chain": "yes"}, "BADARG", "chain must be true or false"),
        (
            {"steps": steps(("a", []), ("b", ["a"])), "chain": True},
            "BADARG",
            "depends_on cannot be given in a chain",
        ),
        ({"steps": [VALID_STEP], "id": "bad id"}, "BADARG", "definition.id may contain only"),
        ({"steps": steps(("a", ["a"]))}, "CYCLE", "steps a -> a form a cycle"),
        (
            {"steps": steps(("a", ["c"]), ("b", ["a"]), ("c", ["b"]))},
            "CYCLE",
            "steps a -> b -> c -> a form a cycle",
        ),
        # A cycle behind a valid prefix and with a branch hanging off it: only the cycle is named.
        (
            {
                "steps": steps(
                    ("root", []), ("x", ["root", "z"]), ("y", ["x"]), ("z", ["y"]), ("tail", ["y"])
                )
            },
            "CYCLE",
            "steps x -> y -> z -> x form a cycle",
        ),
        (
            {
                "steps": [
                    {"id": f"s{i}", "capability": CAPABILITY}
                    for i in range(LIMITS["workflow_steps"] + 1)
                ]
            },
            "LIMIT",
            f"at most {LIMITS['workflow_steps']} steps",
        ),
    ],
)
def test_bad_graphs_are_refused_before_any_write(r, raw, definition, code, fragment):
    text = definition if isinstance(definition, str) else json.dumps(definition)
    message = assert_refused(r, raw, code, "agentfn_wf_create", text)
    assert fragment in message


def test_refused_options_and_an_existing_id_write_nothing(r, raw):
    create(r, {"steps": [VALID_STEP], "id": "taken"})
    definition = json.dumps({"steps": [VALID_STEP]})
    assert "already exists" in assert_refused(
        r, raw, "STATE", "agentfn_wf_create", json.dumps({"steps": [VALID_STEP], "id": "taken"})
    )
    assert_refused(r, raw, "BADARG", "agentfn_wf_create", definition, "CONTEXT", "[1]")
    assert_refused(r, raw, "BADARG", "agentfn_wf_create", definition, "RETENTION_MS", "0")
    assert_refused(r, raw, "BADARG", "agentfn_wf_create", definition, "COLOR", "blue")
    assert_refused(r, raw, "BADARG", "agentfn_wf_create", definition, "RETENTION_MS")
    assert_refused(r, raw, "BADARG", "agentfn_wf_create", keys=("agentfn:{default}", "x"))


def test_create_enqueues_root_steps_and_stores_the_graph(r):
    reply = create(r, {"steps": steps(("a", []), ("b", []), ("c", ["a", "b"]))})
    assert reply == {"id": "w1", "state": "running", "steps": 3, "queued": 2}
    summary, by_id = wf_get(r, "w1")
    assert summary["state"] == "running" and summary["policy"] == "fail_fast"
    assert (
        summary["step_count"] == "3"
        and summary["remaining"] == "3"
        and summary["finished_ms"] == ""
    )
    assert [by_id[s]["state"] for s in "abc"] == ["queued", "queued", "waiting"]
    assert by_id["c"]["depends_on"] == "a,b" and by_id["c"]["task"] == ""
    task = get(r, by_id["a"]["task"])
    assert task["workflow"] == "w1" and task["step"] == "a" and task["state"] == "queued"
    assert json.loads(task["payload"]) == {"step": "a"} and task["inputs"] == ""
    assert r.hget(f"{ROOT}:wf:w1:unmet", "c") == "2"
    assert r.pttl(f"{ROOT}:wf:w1") == -1  # nothing expires while the workflow runs
    # The generated ids skip an id a caller chose.
    create(r, {"steps": [VALID_STEP], "id": "w2"})
    assert create(r, {"steps": [VALID_STEP]})["id"] == "w3"


def test_chain_runs_in_order_and_hands_each_result_on(r):
    create(
        r,
        {
            "steps": [{"id": f"s{i}", "capability": CAPABILITY, "input": i} for i in range(4)],
            "chain": True,
        },
    )
    seen = []
    while ready := claim_all(r):
        assert len(ready) == 1
        ((step, task),) = ready.items()
        seen.append((step, json.loads(task["payload"]), json.loads(task["inputs"] or "null")))
        finish(r, task, {"from": step})
    assert seen == [
        ("s0", 0, None),
        ("s1", 1, {"s0": {"from": "s0"}}),
        ("s2", 2, {"s1": {"from": "s1"}}),
        ("s3", 3, {"s2": {"from": "s2"}}),
    ]
    summary, by_id = wf_get(r, "w1")
    assert (
        summary["state"] == "completed"
        and summary["completed"] == "4"
        and summary["remaining"] == "0"
    )
    assert json.loads(by_id["s3"]["result"]) == {"from": "s3"}


def test_diamond_join_is_enqueued_once_with_both_results(r):
    create(
        r,
        {
            "steps": steps(
                ("top", []), ("left", ["top"]), ("right", ["top"]), ("join", ["left", "right"])
            )
        },
    )
    finish(r, claim_all(r)["top"])
    middle = claim_all(r)
    assert sorted(middle) == ["left", "right"]
    finish(r, middle["left"], "L")
    assert states(r, "w1")["join"] == "waiting" and claim_all(r) == {}
    finish(r, middle["right"], "R")
    join = claim_all(r)
    assert list(join) == ["join"]
    assert json.loads(join["join"]["inputs"]) == {"left": "L", "right": "R"}
    finish(r, join["join"])
    assert wf_get(r, "w1")[0]["state"] == "completed"


def test_inputs_and_payloads_keep_their_exact_json(r):
    text = (
        '{"steps":[{"id":"a","capability":"step","input":{"list":[],"big":123456789012345678901,'
        '"f":0.1,"s":"\\"q\\" \\u00e9"}},{"id":"b","capability":"step","depends_on":["a"],"input" : [ ] }]}'
    )
    create(r, text)
    a = claim_all(r)["a"]
    assert a["payload"] == '{"list":[],"big":123456789012345678901,"f":0.1,"s":"\\"q\\" \\u00e9"}'
    complete(r, a["id"], a["token"], '{"empty":[],"n":98765432109876543210}')
    b = claim_all(r)["b"]
    assert b["payload"] == "[ ]"
    assert b["inputs"] == '{"a":{"empty":[],"n":98765432109876543210}}'


def test_fan_out_and_in_of_100(r):
    width = [f"m{i}" for i in range(100)]
    create(r, {"steps": steps(("root", []), *[(m, ["root"]) for m in width], ("join", width))})
    finish(r, claim_all(r)["root"], 0)
    middle = claim_all(r)
    assert sorted(middle) == sorted(width)
    for index, step in enumerate(width):
        finish(r, middle[step], index)
        assert (states(r, "w1")["join"] == "queued") == (index == len(width) - 1)
    join = claim_all(r)["join"]
    assert json.loads(join["inputs"]) == {step: index for index, step in enumerate(width)}
    finish(r, join)
    assert wf_get(r, "w1")[0]["state"] == "completed"


def test_fail_fast_cancels_the_rest_and_their_tasks(r):
    register(r, "a2", CAPABILITY)
    create(r, {"steps": steps(("bad", []), ("running", []), ("queued", []), ("after", ["bad"]))})
    ready = claim(r, "a1", "COUNT", 2)["tasks"]
    tasks = {task["step"]: task for task in ready}
    assert sorted(tasks) == ["bad", "running"]
    queued_task = wf_get(r, "w1")[1]["queued"]["task"]
    fail(r, tasks["bad"]["id"], tasks["bad"]["token"], "no luck", "RETRY", "no")
    summary, by_id = wf_get(r, "w1")
    assert summary["state"] == "failed" and summary["error"] == "step bad failed: no luck"
    assert summary["failed"] == "1" and summary["canceled"] == "3" and summary["remaining"] == "0"
    assert {s: by_id[s]["state"] for s in by_id} == {
        "bad": "failed",
        "running": "canceled",
        "queued": "canceled",
        "after": "canceled",
    }
    assert by_id["bad"]["error"] == "no luck"
    assert get(r, queued_task)["state"] == "canceled"
    running = get(r, tasks["running"]["id"])
    assert running["state"] == "canceled" and running["cancel_requested"] == "1"
    assert claim(r, "a2")["tasks"] == []  # the queued step's task left its stream
    # The running worker learns at its completion; the result is discarded, nothing else moves.
    assert finish(r, tasks["running"]) == {"id": tasks["running"]["id"], "state": "canceled"}
    assert wf_get(r, "w1")[0]["canceled"] == "3"
    assert r.pttl(f"{ROOT}:wf:w1") > 0 and r.pttl(f"{ROOT}:wf:w1:step:after") > 0


def test_continue_skips_dependents_transitively_and_finishes_the_rest(r):
    create(
        r,
        {
            "policy": "continue",
            "steps": steps(
                ("bad", []),
                ("child", ["bad"]),
                ("grandchild", ["child", "ok"]),
                ("ok", []),
                ("ok2", ["ok"]),
            ),
        },
    )
    tasks = claim_all(r)
    fail(r, tasks["bad"]["id"], tasks["bad"]["token"], "broken", "RETRY", "no")
    assert states(r, "w1") == {
        "bad": "failed",
        "child": "skipped",
        "grandchild": "skipped",
        "ok": "queued",
        "ok2": "waiting",
    }
    assert wf_get(r, "w1")[0]["state"] == "running"
    finish(r, tasks["ok"])
    ok2 = claim_all(r)
    assert list(ok2) == ["ok2"]
    finish(r, ok2["ok2"])
    summary, by_id = wf_get(r, "w1")
    assert summary["state"] == "failed" and summary["remaining"] == "0"
    assert (summary["completed"], summary["failed"], summary["skipped"]) == ("2", "1", "2")
    assert by_id["grandchild"]["error"] == "skipped: step bad failed: broken"


def test_continue_with_no_failure_completes(r):
    create(r, {"policy": WorkflowPolicy.CONTINUE.value, "steps": steps(("a", []))})
    finish(r, claim_all(r)["a"])
    assert wf_get(r, "w1")[0]["state"] == "completed"


def test_retries_are_the_tasks_and_a_dead_step_fails_the_workflow(r):
    create(
        r,
        {
            "steps": [
                {"id": "a", "capability": CAPABILITY, "max_attempts": 2, "backoff_ms": 0},
                {"id": "b", "capability": CAPABILITY},
            ]
        },
    )
    tasks = claim_all(r)
    task_id = tasks["a"]["id"]
    assert (
        fail(r, task_id, tasks["a"]["token"], "flaky", "RETRY", "yes")["state"] == "queued"
    )  # a retry: the hook does not see it
    assert states(r, "w1")["a"] == "queued"
    again = claim_all(r)
    assert again["a"]["attempt"] == "2"
    finish(r, tasks["b"])
    assert fail(r, task_id, again["a"]["token"], "flaky again")["state"] == "dead"
    summary, by_id = wf_get(r, "w1")
    assert summary["state"] == "failed" and by_id["a"]["state"] == "failed"
    assert by_id["a"]["attempts"] == "2" and by_id["a"]["error"] == "flaky again"
    assert by_id["b"]["state"] == "completed"


def test_a_step_task_canceled_directly_counts_as_a_failure(r):
    create(r, {"policy": "continue", "steps": steps(("a", []), ("b", ["a"]), ("c", []))})
    task_id = wf_get(r, "w1")[1]["a"]["task"]
    fcall(r, "agentfn_task_cancel", task_id)
    assert states(r, "w1") == {"a": "canceled", "b": "skipped", "c": "queued"}
    summary = wf_get(r, "w1")[0]
    assert summary["canceled"] == "1" and summary["error"] == "step a canceled: task canceled"


def test_cancel_workflow(r, raw):
    create(r, {"steps": steps(("a", []), ("b", []), ("c", ["a"]))})
    running = claim(r, "a1")["tasks"][0]
    reply = pairs(fcall(r, "agentfn_wf_cancel", "w1"))
    assert reply == {"id": "w1", "state": "canceled", "was": "running", "canceled_steps": 3}
    summary, by_id = wf_get(r, "w1")
    assert summary["state"] == "canceled" and summary["error"] == "workflow canceled"
    assert all(step["state"] == "canceled" for step in by_id.values())
    assert all(get(r, by_id[s]["task"])["state"] == "canceled" for s in ("a", "b"))
    extend = pairs(fcall(r, "agentfn_task_extend", running["id"], running["token"]))
    assert extend["canceled"] == 1
    assert finish(r, running)["state"] == "canceled"
    # Canceling again changes nothing; a finished workflow cannot be canceled; a missing one is not found.
    assert pairs(fcall(r, "agentfn_wf_cancel", "w1"))["was"] == "canceled"
    create(r, {"steps": [VALID_STEP], "id": "done"})
    finish(r, claim_all(r)["a"])
    assert "already completed" in assert_refused(r, raw, "STATE", "agentfn_wf_cancel", "done")
    assert_refused(r, raw, "NOTFOUND", "agentfn_wf_cancel", "ghost")
    assert_refused(r, raw, "BADARG", "agentfn_wf_cancel", "bad id")


def test_input_required_then_signal_runs_the_step_again(r, raw):
    create(r, {"steps": steps(("draft", []), ("review", ["draft"]), ("publish", ["review"]))})
    finish(r, claim_all(r)["draft"], "text")
    review = claim_all(r)["review"]
    assert_refused(r, raw, "STATE", "agentfn_wf_signal", "w1", "review", "true")  # not waiting yet
    reply = complete(
        r, review["id"], review["token"], "null", "INPUT_REQUIRED", '{"question":"ok?"}'
    )
    assert reply["state"] == "completed"
    summary, by_id = wf_get(r, "w1")
    assert summary["state"] == "running" and summary["input_required"] == "1"
    assert (
        by_id["review"]["state"] == "input-required"
        and by_id["review"]["prompt"] == '{"question":"ok?"}'
    )
    assert claim_all(r) == {}

    assert_refused(r, raw, "NOTFOUND", "agentfn_wf_signal", "w1", "ghost", "true")
    assert_refused(r, raw, "NOTFOUND", "agentfn_wf_signal", "ghost", "review", "true")
    assert_refused(r, raw, "STATE", "agentfn_wf_signal", "w1", "publish", "true")
    assert_refused(r, raw, "BADARG", "agentfn_wf_signal", "w1", "review", "{not json")
    signal = pairs(fcall(r, "agentfn_wf_signal", "w1", "review", '{"approved": true}'))
    assert (
        signal["workflow"] == "w1"
        and signal["state"] == "queued"
        and signal["task"] != review["id"]
    )
    again = claim_all(r)["review"]
    assert again["id"] == signal["task"]
    assert json.loads(again["payload"]) == {"step": "review"}
    assert again["inputs"] == '{"draft":"text","_signal":{"approved": true}}'
    finish(r, again, "approved")
    finish(r, claim_all(r)["publish"])
    summary, by_id = wf_get(r, "w1")
    assert summary["state"] == "completed" and summary["input_required"] == "0"
    assert by_id["review"]["attempts"] == "2" and by_id["review"]["signal"] == '{"approved": true}'


def test_get_is_read_only_and_can_leave_out_steps(r, raw):
    create(r, {"steps": steps(("a", []))})
    summary, by_id = wf_get(r, "w1", "STEPS", "no")
    assert by_id == {} and summary["id"] == "w1"
    assert list(summary) == [
        "id",
        "state",
        "policy",
        "created_ms",
        "finished_ms",
        "error",
        "step_count",
        "remaining",
        "completed",
        "failed",
        "skipped",
        "canceled",
        "input_required",
        "context_version",
        "retention_ms",
        "traceparent",
    ]
    task = claim_all(r)["a"]
    step = wf_get(r, "w1")[1]["a"]
    assert step["task_state"] == "running" and step["attempts"] == "1" and step["started_ms"] != ""
    assert list(step) == [
        "id",
        "capability",
        "state",
        "depends_on",
        "input",
        "attempts",
        "task",
        "result",
        "error",
        "prompt",
        "signal",
        "queued_ms",
        "started_ms",
        "finished_ms",
        "task_state",
    ]
    finish(r, task)
    assert_refused(r, raw, "NOTFOUND", "agentfn_wf_get", "ghost")
    assert_refused(r, raw, "BADARG", "agentfn_wf_get", "w1", "STEPS", "maybe")
    with pytest.raises(redis.ResponseError, match="write"):
        r.execute_command("FCALL_RO", "agentfn_wf_cancel", 1, ROOT, "w1")


def test_retention_applies_when_the_workflow_finishes(r):
    create(r, {"steps": steps(("a", [])), "id": "short"}, "RETENTION_MS", "60000")
    task_id = wf_get(r, "short")[1]["a"]["task"]
    assert r.hget(f"{ROOT}:task:{task_id}", "retention_ms") == "60000"
    finish(r, claim_all(r)["a"])
    for key in ("", ":steps", ":step:a"):
        assert 0 < r.pttl(f"{ROOT}:wf:short{key}") <= 60000


def test_transitions_publish_on_the_workflow_channel_and_emit_events(r):
    pubsub = r.pubsub()
    pubsub.subscribe(f"{ROOT}:notify:wf:w1")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    create(r, {"steps": steps(("a", []), ("b", ["a"]))})
    finish(r, claim_all(r)["a"])
    finish(r, claim_all(r)["b"])
    messages = []
    while (message := pubsub.get_message(timeout=1)) is not None:
        messages.append(message["data"])
        if message["data"] == "workflow.completed":
            break
    pubsub.close()
    assert messages == [
        "workflow.created",
        "step.completed a",
        "step.completed b",
        "workflow.completed",
    ]
    kinds = [
        fields["type"] for _, fields in r.xrange(f"{ROOT}:events") if fields.get("workflow") == "w1"
    ]
    assert kinds == ["workflow.created", "step.completed", "step.completed", "workflow.completed"]


def test_context_get_set_merge_and_compare_and_set(r, raw):
    create(r, {"steps": steps(("a", []))}, "CONTEXT", '{"topic": "redis", "notes": []}')
    context = pairs(r.execute_command("FCALL_RO", "agentfn_ctx_get", 1, ROOT, "w1"))
    assert context == {
        "workflow": "w1",
        "document": '{"topic": "redis", "notes": []}',
        "version": "0",
    }
    assert pairs(
        fcall(r, "agentfn_ctx_set", "w1", '{"notes": ["a"], "n": 1}', "MODE", "merge")
    ) == {"workflow": "w1", "version": 1}
    assert (
        pairs(
            fcall(
                r,
                "agentfn_ctx_set",
                "w1",
                '{"topic": null, "big": 123456789012345678901}',
                "MODE",
                "merge",
                "EXPECT_VERSION",
                "1",
            )
        )["version"]
        == 2
    )
    document = pairs(r.execute_command("FCALL_RO", "agentfn_ctx_get", 1, ROOT, "w1"))["document"]
    assert document == '{"notes":["a"],"n":1,"big":123456789012345678901}'
    message = assert_refused(
        r, raw, "CONFLICT", "agentfn_ctx_set", "w1", "{}", "EXPECT_VERSION", "1"
    )
    assert "at version 2, not 1" in message
    assert (
        pairs(fcall(r, "agentfn_ctx_set", "w1", '{"fresh": true}', "EXPECT_VERSION", "2"))[
            "version"
        ]
        == 3
    )
    assert (
        pairs(r.execute_command("FCALL_RO", "agentfn_ctx_get", 1, ROOT, "w1"))["document"]
        == '{"fresh": true}'
    )
    assert_refused(r, raw, "BADARG", "agentfn_ctx_set", "w1", "[1]")
    assert_refused(r, raw, "BADARG", "agentfn_ctx_set", "w1", "{}", "MODE", "append")
    assert_refused(r, raw, "BADARG", "agentfn_ctx_set", "w1", "{}", "EXPECT_VERSION", "-1")
    assert_refused(r, raw, "NOTFOUND", "agentfn_ctx_set", "ghost", "{}")
    assert_refused(r, raw, "NOTFOUND", "agentfn_ctx_get", "ghost")
    half = json.dumps({"blob": "x" * (LIMITS["context_bytes"] // 2 + 10)})
    fcall(r, "agentfn_ctx_set", "w1", half)
    assert_refused(
        r, raw, "LIMIT", "agentfn_ctx_set", "w1", half.replace("blob", "blob2"), "MODE", "merge"
    )
