"""agentfn workflows as A2A tasks: states, messages, artifacts, JSON values in parts.

An A2A task served by the gateway *is* an agentfn workflow (same id); a message naming one
skill becomes a workflow of one step. So every A2A state is read off the workflow and its steps
(``agentfn_wf_get``), and nothing about a task lives in the gateway's memory. The state table is
in README.md ("Agents from other ecosystems"); :func:`task_state` is that table as code.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from a2a.types import (
    Artifact,
    Message,
    Part,
    Role,
    Task,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from google.protobuf import json_format, struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from ..client.api.workflows import WorkflowInfo
from ..constants import StepState, WorkflowState

#: The context document field that keeps the A2A context id of a workflow the gateway created.
CONTEXT_FIELD = "a2a_context_id"

#: States after which an A2A task never changes; input-required ends a stream too.
TERMINAL = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
    }
)
INTERRUPTED = frozenset({TaskState.TASK_STATE_INPUT_REQUIRED})

_FINISHED = {
    WorkflowState.COMPLETED: TaskState.TASK_STATE_COMPLETED,
    WorkflowState.FAILED: TaskState.TASK_STATE_FAILED,
    WorkflowState.CANCELED: TaskState.TASK_STATE_CANCELED,
}


def task_state(info: WorkflowInfo) -> TaskState:
    """The A2A state of a workflow (read with its steps)."""
    if info.state in _FINISHED:
        return _FINISHED[info.state]
    if any(step.state == StepState.INPUT_REQUIRED for step in info.steps):
        return TaskState.TASK_STATE_INPUT_REQUIRED
    if any(
        step.attempts > 0 or step.task_state == "running" or step.state == StepState.COMPLETED
        for step in info.steps
    ):
        return TaskState.TASK_STATE_WORKING
    return TaskState.TASK_STATE_SUBMITTED


def value_part(value: Any) -> Part:
    """A JSON value as a part: text for a string, data otherwise."""
    if isinstance(value, str):
        return Part(text=value)
    return Part(
        data=json_format.ParseDict(value, struct_pb2.Value()), media_type="application/json"
    )


def _whole_numbers(value: Any) -> Any:
    """protobuf Values hold numbers as doubles: give whole ones back as ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    return value


def struct_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A protobuf Struct (metadata) as a dict."""
    document: dict[str, Any] = _whole_numbers(json_format.MessageToDict(struct))
    return document


def parts_value(parts: Any) -> Any:
    """The JSON value parts carry: the first data part, else the text parts joined (None: no part)."""
    for part in parts:
        if part.HasField("data"):
            return _whole_numbers(json_format.MessageToDict(part.data))
    texts = [part.text for part in parts if part.HasField("text")]
    return "\n".join(texts) if texts else None


def _now() -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(timezone.utc))
    return stamp


def agent_message(task_id: str, context_id: str, value: Any) -> Message:
    """A message from the agent side of a task (a prompt, an error)."""
    return Message(
        message_id=f"{task_id}-{datetime.now(timezone.utc).timestamp():.6f}",
        role=Role.ROLE_AGENT,
        task_id=task_id,
        context_id=context_id,
        parts=[value_part(value)],
    )


def status(info: WorkflowInfo, context_id: str) -> TaskStatus:
    """The A2A status of a workflow: its state and, when it asks or failed, a message saying what."""
    state = task_state(info)
    result = TaskStatus(state=state, timestamp=_now())
    if state == TaskState.TASK_STATE_INPUT_REQUIRED:
        asking = [step for step in info.steps if step.state == StepState.INPUT_REQUIRED]
        prompt = asking[0].prompt if len(asking) == 1 else {step.id: step.prompt for step in asking}
        result.message.CopyFrom(agent_message(info.id, context_id, prompt))
        result.message.metadata.update({"steps": [step.id for step in asking]})
    elif state in (TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_CANCELED) and info.error:
        result.message.CopyFrom(agent_message(info.id, context_id, info.error))
    return result


def artifacts(info: WorkflowInfo) -> list[Artifact]:
    """One artifact per completed step (artifact id and name: the step id), its result as a part."""
    return [
        Artifact(artifact_id=step.id, name=step.id, parts=[value_part(step.result)])
        for step in info.steps
        if step.state == StepState.COMPLETED
    ]


def task(info: WorkflowInfo, context_id: str) -> Task:
    """The workflow as an A2A task."""
    return Task(
        id=info.id,
        context_id=context_id,
        status=status(info, context_id),
        artifacts=artifacts(info),
    )


def status_event(info: WorkflowInfo, context_id: str) -> TaskStatusUpdateEvent:
    return TaskStatusUpdateEvent(
        task_id=info.id, context_id=context_id, status=status(info, context_id)
    )


def rejected(task_id: str, context_id: str, reason: str) -> Task:
    """A task the gateway refused to create (it is not stored anywhere)."""
    return Task(
        id=task_id,
        context_id=context_id,
        status=TaskStatus(
            state=TaskState.TASK_STATE_REJECTED,
            timestamp=_now(),
            message=agent_message(task_id, context_id, reason),
        ),
    )
