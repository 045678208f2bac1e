"""How the pump groups finished outcomes into calls (agentfn.agent.settling): completions of
several tasks in one complete_many within its limits, everything else one call each."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from agentfn.agent.executors import Outcome
from agentfn.agent.settling import group_completions
from agentfn.constants import LIMITS


def finished(*outcomes: Outcome, workflow: int = 0) -> list[tuple[Any, Outcome]]:
    """Outcomes paired with a stand-in for their Running (grouping reads only its task's id and
    workflow); the task numbered ``workflow`` is a workflow's step."""
    return [
        (
            SimpleNamespace(
                task=SimpleNamespace(id=f"t{n}", workflow="w1" if n == workflow else None)
            ),
            outcome,
        )
        for n, outcome in enumerate(outcomes, start=1)
    ]


def ids(calls: list[list[tuple[Any, Outcome]]]) -> list[list[str]]:
    return [[running.task.id for running, _ in call] for call in calls]


def single_ids(singles: list[tuple[Any, Outcome]]) -> list[str]:
    return [running.task.id for running, _ in singles]


def test_completions_group_and_the_rest_go_one_call_each():
    singles, groups = group_completions(
        finished(
            Outcome("complete", result={"a": 1}),
            Outcome("fail", error="boom"),
            Outcome("complete", result=None),
            Outcome("complete", prompt={"q": 1}),  # an input request: complete's own option
            Outcome("complete", result={1, 2}),  # not JSON-serialisable: finish_call fails it
            Outcome("complete", result="é"),
            Outcome("complete", result=7),  # a workflow's step: complete_many takes one at most
            workflow=7,
        )
    )
    assert single_ids(singles) == ["t2", "t4", "t5", "t7"]
    assert ids(groups) == [["t1", "t3", "t6"]]


def test_a_lone_completion_is_a_plain_complete():
    singles, groups = group_completions(
        finished(Outcome("complete", result=1), Outcome("fail", error="x"))
    )
    assert single_ids(singles) == ["t2", "t1"] and groups == []


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
    assert single_ids(singles) == ["t5", "t4"]
