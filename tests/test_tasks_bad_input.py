"""Every argument of every task function, refused with its code and without any write."""

from __future__ import annotations

import pytest

from .helpers import ROOT, assert_refused, secret_of
from .secret_helpers import WRONG_SECRET, token_of
from .tasks_helpers import claim, register, submit

TASK_FUNCTIONS = [
    "agentfn_task_submit",
    "agentfn_task_claim",
    "agentfn_task_complete",
    "agentfn_task_fail",
    "agentfn_task_extend",
    "agentfn_task_cancel",
    "agentfn_task_get",
    "agentfn_task_requeue",
    "agentfn_reap",
]

S = secret_of("a1")
T1 = token_of("t1", 1)  # a1's token of t1's attempt 1
# A valid call of each function against the fixture's state (t1 running under token T1 for a1).
VALID = {
    "agentfn_task_submit": ["x", "{}"],
    "agentfn_task_claim": ["a1", S],
    "agentfn_task_complete": ["t1", T1, "{}"],
    "agentfn_task_fail": ["t1", T1, "oops"],
    "agentfn_task_extend": ["t1", T1],
    "agentfn_task_cancel": ["t1"],
    "agentfn_task_get": ["t1"],
    "agentfn_task_requeue": ["t1"],
    "agentfn_reap": [],
}

BAD = [
    # submit: capability, payload, every option
    ("BADARG", "agentfn_task_submit", []),
    ("BADARG", "agentfn_task_submit", ["x"]),
    ("BADARG", "agentfn_task_submit", ["", "{}"]),
    ("BADARG", "agentfn_task_submit", ["web search", "{}"]),
    ("BADARG", "agentfn_task_submit", ["x:y", "{}"]),
    ("BADARG", "agentfn_task_submit", ["c" * 65, "{}"]),
    ("BADARG", "agentfn_task_submit", ["x", ""]),
    ("BADARG", "agentfn_task_submit", ["x", "{not json"]),
    ("LIMIT", "agentfn_task_submit", ["x", '"' + "a" * 1_048_577 + '"']),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "PRIORITY"]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "PRIORITY", "urgent"]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "DELAY_MS", "-1"]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "DELAY_MS", "soon"]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "DELAY_MS", str(10**15)]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "MAX_ATTEMPTS", "0"]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "MAX_ATTEMPTS", "1001"]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "MAX_ATTEMPTS", "2.5"]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "BACKOFF_MS", "-5"]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "BACKOFF_MAX_MS", "x"]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "TIMEOUT_MS", "0"]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "TIMEOUT_MS", str(31_536_000_001)]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "IDEMPOTENCY_KEY", ""]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "IDEMPOTENCY_KEY", "a key"]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "IDEMPOTENCY_KEY", "k" * 129]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "TO", "a{1}"]),
    ("NOTFOUND", "agentfn_task_submit", ["x", "{}", "TO", "ghost"]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "RETENTION_MS", "0"]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "PRIORITY", "high", "priority", "low"]),
    ("BADARG", "agentfn_task_submit", ["x", "{}", "COLOR", "blue"]),
    # claim: agent_id, secret, COUNT, LEASE_MS
    ("BADARG", "agentfn_task_claim", []),
    ("BADARG", "agentfn_task_claim", ["a1"]),
    ("BADARG", "agentfn_task_claim", ["bad id", S]),
    ("BADARG", "agentfn_task_claim", ["a1", "COUNT", "1"]),
    ("BADARG", "agentfn_task_claim", ["a1", S[:16]]),
    ("BADARG", "agentfn_task_claim", ["a1", S + "."]),
    ("NOTFOUND", "agentfn_task_claim", ["ghost", S]),
    ("DENIED", "agentfn_task_claim", ["a1", WRONG_SECRET]),
    ("BADARG", "agentfn_task_claim", ["a1", S, "COUNT", "0"]),
    ("BADARG", "agentfn_task_claim", ["a1", S, "COUNT", "1001"]),
    ("BADARG", "agentfn_task_claim", ["a1", S, "COUNT", "many"]),
    ("BADARG", "agentfn_task_claim", ["a1", S, "LEASE_MS", "0"]),
    ("BADARG", "agentfn_task_claim", ["a1", S, "LEASE_MS"]),
    ("BADARG", "agentfn_task_claim", ["a1", S, "BLOCK", "100"]),
    # complete: task_id, token, result, NEXT, INPUT_REQUIRED
    ("BADARG", "agentfn_task_complete", ["t1", T1]),
    ("BADARG", "agentfn_task_complete", ["t 1", T1, "{}"]),
    ("NOTFOUND", "agentfn_task_complete", ["t99", T1, "{}"]),
    ("BADARG", "agentfn_task_complete", ["t1", "0", "{}"]),
    ("BADARG", "agentfn_task_complete", ["t1", "one", "{}"]),
    ("BADARG", "agentfn_task_complete", ["t1", "1", "{}"]),  # the attempt alone is no token
    ("BADARG", "agentfn_task_complete", ["t1", "0" + T1, "{}"]),
    ("BADARG", "agentfn_task_complete", ["t1", T1[:-1], "{}"]),
    ("BADARG", "agentfn_task_complete", ["t1", T1 + "0", "{}"]),
    ("BADARG", "agentfn_task_complete", ["t1", T1[2:], "{}"]),
    ("BADARG", "agentfn_task_complete", ["t1", "1-" + "g" * 40, "{}"]),
    ("STALE", "agentfn_task_complete", ["t1", token_of("t1", 2), "{}"]),
    ("DENIED", "agentfn_task_complete", ["t1", "1-" + "0" * 40, "{}"]),  # forged
    ("DENIED", "agentfn_task_complete", ["t1", T1.upper(), "{}"]),  # hex, but not the token
    ("DENIED", "agentfn_task_complete", ["t1", token_of("t2", 1), "{}"]),  # another task's
    ("DENIED", "agentfn_task_complete", ["t1", token_of("t1", 1, "a2"), "{}"]),  # another agent's
    ("BADARG", "agentfn_task_complete", ["t1", T1, "{oops"]),
    ("LIMIT", "agentfn_task_complete", ["t1", T1, '"' + "a" * 1_048_577 + '"']),
    ("BADARG", "agentfn_task_complete", ["t1", T1, "{}", "NEXT", "-1"]),
    ("BADARG", "agentfn_task_complete", ["t1", T1, "{}", "NEXT", "1001"]),
    ("BADARG", "agentfn_task_complete", ["t1", T1, "{}", "INPUT_REQUIRED", "nope"]),
    (
        "BADARG",
        "agentfn_task_complete",
        ["t1", T1, "{}", "INPUT_REQUIRED", "{}"],
    ),  # not a workflow task
    ("BADARG", "agentfn_task_complete", ["t1", T1, "{}", "RETRY", "no"]),
    # fail: task_id, token, error, RETRY, NEXT
    ("BADARG", "agentfn_task_fail", ["t1", T1]),
    ("BADARG", "agentfn_task_fail", ["", T1, "e"]),
    ("NOTFOUND", "agentfn_task_fail", ["t99", T1, "e"]),
    ("BADARG", "agentfn_task_fail", ["t1", "-1", "e"]),
    ("BADARG", "agentfn_task_fail", ["t1", "1", "e"]),
    ("STALE", "agentfn_task_fail", ["t1", token_of("t1", 7), "e"]),
    ("DENIED", "agentfn_task_fail", ["t1", token_of("t3", 1), "e"]),
    ("LIMIT", "agentfn_task_fail", ["t1", T1, "e" * 8193]),
    ("BADARG", "agentfn_task_fail", ["t1", T1, "e", "RETRY", "maybe"]),
    ("BADARG", "agentfn_task_fail", ["t1", T1, "e", "NEXT", "x"]),
    ("BADARG", "agentfn_task_fail", ["t1", T1, "e", "RETRY", "no", "RETRY", "yes"]),
    ("BADARG", "agentfn_task_fail", ["t1", T1, "e", "DELAY_MS", "5"]),
    # extend: task_id, token, LEASE_MS
    ("BADARG", "agentfn_task_extend", ["t1"]),
    ("BADARG", "agentfn_task_extend", ["t:1", T1]),
    ("NOTFOUND", "agentfn_task_extend", ["t99", T1]),
    ("BADARG", "agentfn_task_extend", ["t1", "1.0"]),
    ("BADARG", "agentfn_task_extend", ["t1", "1"]),
    ("STALE", "agentfn_task_extend", ["t1", token_of("t1", 3)]),
    ("DENIED", "agentfn_task_extend", ["t1", "1-" + "f" * 40]),
    ("BADARG", "agentfn_task_extend", ["t1", T1, "LEASE_MS", "0"]),
    ("BADARG", "agentfn_task_extend", ["t1", T1, "LEASE_MS", "long"]),
    ("BADARG", "agentfn_task_extend", ["t1", T1, "TTL_MS", "5"]),
    # cancel: task_id
    ("BADARG", "agentfn_task_cancel", []),
    ("BADARG", "agentfn_task_cancel", ["t{1}"]),
    ("NOTFOUND", "agentfn_task_cancel", ["t99"]),
    ("BADARG", "agentfn_task_cancel", ["t1", "FORCE", "yes"]),
    ("STATE", "agentfn_task_cancel", ["t2"]),  # completed
    ("STATE", "agentfn_task_cancel", ["t3"]),  # dead
    # get: task_id
    ("BADARG", "agentfn_task_get", []),
    ("BADARG", "agentfn_task_get", ["t 1"]),
    ("NOTFOUND", "agentfn_task_get", ["t99"]),
    ("BADARG", "agentfn_task_get", ["t1", "FIELDS", "state"]),
    # requeue: task_id, MAX_ATTEMPTS
    ("BADARG", "agentfn_task_requeue", []),
    ("BADARG", "agentfn_task_requeue", ["t@{x}"]),
    ("NOTFOUND", "agentfn_task_requeue", ["t99"]),
    ("STATE", "agentfn_task_requeue", ["t1"]),  # running
    ("STATE", "agentfn_task_requeue", ["t2"]),  # completed
    ("BADARG", "agentfn_task_requeue", ["t3", "MAX_ATTEMPTS", "0"]),
    ("BADARG", "agentfn_task_requeue", ["t3", "MAX_ATTEMPTS", "1001"]),
    ("BADARG", "agentfn_task_requeue", ["t3", "MAX_ATTEMPTS"]),
    # reap: LIMIT
    ("BADARG", "agentfn_reap", ["LIMIT"]),
    ("BADARG", "agentfn_reap", ["LIMIT", "0"]),
    ("BADARG", "agentfn_reap", ["LIMIT", "1001"]),
    ("BADARG", "agentfn_reap", ["LIMIT", "lots"]),
    ("BADARG", "agentfn_reap", ["ONLY", "leases"]),
]


@pytest.fixture
def busy(deployed):
    """t1 running under token T1 for a1, t2 completed, t3 dead, t4 queued (a delayed task too)."""
    register(deployed, "a1", "x", "TTL_MS", "600000")
    submit(deployed, "x", "{}")
    submit(deployed, "x", "{}")
    submit(deployed, "x", "{}", "MAX_ATTEMPTS", "1")
    claim(deployed, "a1", "COUNT", "3")
    deployed.execute_command(
        "FCALL", "agentfn_task_complete", 1, ROOT, "t2", token_of("t2", 1), "{}"
    )
    deployed.execute_command("FCALL", "agentfn_task_fail", 1, ROOT, "t3", token_of("t3", 1), "boom")
    submit(deployed, "x", "{}")
    submit(deployed, "x", "{}", "DELAY_MS", "600000")
    return deployed


@pytest.mark.parametrize("code,function,args", BAD)
def test_bad_input_changes_nothing(busy, raw, code, function, args):
    assert_refused(busy, raw, code, function, *args)


@pytest.mark.parametrize("function", TASK_FUNCTIONS)
@pytest.mark.parametrize("keys", [(), ("agentfn:default",), ("agentfn:{a b}",), (ROOT, ROOT)])
def test_wrong_root_key_is_refused(busy, raw, function, keys):
    assert_refused(busy, raw, "BADARG", function, *VALID[function], keys=keys)


@pytest.mark.parametrize("function", TASK_FUNCTIONS)
def test_unmigrated_namespace_is_refused_with_version(busy, raw, function):
    assert_refused(busy, raw, "VERSION", function, *VALID[function], keys=("agentfn:{fresh}",))


@pytest.mark.parametrize("function", TASK_FUNCTIONS)
def test_the_valid_calls_are_accepted(busy, function):
    """The calls the refusals above vary are themselves fine (so each refusal is the bad part's)."""
    if function == "agentfn_task_requeue":
        busy.execute_command("FCALL", function, 1, ROOT, "t3")
        return
    busy.execute_command("FCALL", function, 1, ROOT, *VALID[function])


def test_next_with_a_lapsed_agent_changes_nothing(busy, raw):
    busy.hset(f"{ROOT}:agent:a1", "expires_ms", 1)
    assert_refused(busy, raw, "LAPSED", "agentfn_task_complete", "t1", T1, "{}", "NEXT", "1")
    assert_refused(busy, raw, "LAPSED", "agentfn_task_fail", "t1", T1, "e", "NEXT", "1")
    assert_refused(busy, raw, "LAPSED", "agentfn_task_claim", "a1", S)
