"""How the pump groups finished outcomes into calls (agentfn.agent.settling): completions of
several tasks in one complete_many within its limits, everything else one call each."""

from __future__ import annotations

from typing import Any

from agentfn.agent.executors import Outcome
from agentfn.agent.settling import group_completions
from agentfn.constants import LIMITS


def finished(*outcomes: Outcome) -> list[tuple[Any, Outcome]]:
    """Outcomes paired with a stand-in for their Running (grouping reads only the outcome)."""
    return [(f"t{index}", outcome) for index, outcome in enumerate(outcomes, start=1)]


def ids(calls: list[list[tuple[Any, Outcome]]]) -> list[list[str]]:
    return [[running for running, _ in call] for call in calls]


def test_completions_group_and_the_rest_go_one_call_each():
    singles, groups = group_completions(
        finished(
            Outcome("complete", result={"a": 1}),
            Outcome("fail", error="boom"),
            Outcome("complete", result=None),
            Outcome("complete", prompt={"q": 1}),  # an input request: complete's own option
            Outcome("complete", result={1, 2}),  # not JSON-serialisable: finish_call fails it
            Outcome("complete", result="é"),
        )
    )
    assert [running for running, _ in singles] == ["t2", "t4", "t5"]
    assert ids(groups) == [["t1", "t3", "t6"]]


def test_a_lone_completion_is_a_plain_complete():
    singles, groups = group_completions(
        finished(Outcome("complete", result=1), Outcome("fail", error="x"))
    )
    assert [running for running, _ in singles] == ["t2", "t1"] and groups == []


def test_groups_keep_to_the_item_and_byte_limits():
    count = LIMITS["complete_count"]
    _, groups = group_completions(finished(*[Outcome("complete", result=0)] * (count + 2)))
    assert [len(group) for group in groups] == [count, 2]
    third = "x" * (LIMITS["json_bytes"] // 3 - 2)  # three results of json_bytes // 3 bytes
    singles, groups = group_completions(
        finished(
            *[Outcome("complete", result=third)] * 4,
            Outcome("complete", result="y" * LIMITS["json_bytes"]),  # too large for any call
        )
    )
    assert ids(groups) == [["t1", "t2", "t3"]]
    assert [running for running, _ in singles] == ["t5", "t4"]
