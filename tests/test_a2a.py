"""`agentfn a2a` driven by the a2a-sdk's own client, with a real agent process serving the work:
the card, streamed state changes, input-required answered, cancel, rejected, a workflow."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import Any

import pytest

pytest.importorskip("a2a")

from a2a.client import ClientConfig, create_client  # noqa: E402
from a2a.types import (  # noqa: E402
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    TaskState,
)
from a2a.utils.errors import TaskNotCancelableError, TaskNotFoundError, UnsupportedOperationError  # noqa: E402
from google.protobuf import json_format, struct_pb2  # noqa: E402

import agentfn  # noqa: E402
from agentfn.a2a import RemoteAgent  # noqa: E402
from agentfn.a2a.mapping import parts_value  # noqa: E402
from agentfn.server import free_port  # noqa: E402

from . import bridge_agents  # noqa: E402
from .agent_fixtures import serving, spawn_worker, wait_for, wait_for_task  # noqa: E402
from .bridge_agents import announced_server, serving_team  # noqa: E402
from .test_examples import README  # noqa: E402

S = TaskState


def message(
    value: Any = None, *, skill: str | None = None, task_id: str = "", **metadata: Any
) -> SendMessageRequest:
    part = (
        Part(text=value)
        if isinstance(value, str)
        else Part(data=json_format.ParseDict(value, struct_pb2.Value()))
    )
    note = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[part], task_id=task_id)
    if skill is not None:
        metadata["skill"] = skill
    note.metadata.update(metadata)
    return SendMessageRequest(message=note)


async def stream(
    client: Any, request: SendMessageRequest
) -> tuple[list[int], StreamResponse, list[Any]]:
    """Send and read the whole stream: the states seen in order, the last event, artifact values."""
    states, artifacts, last = [], [], None
    async for event in client.send_message(request):
        last = event
        if event.HasField("task"):
            states.append(event.task.status.state)
            artifacts.extend(parts_value(artifact.parts) for artifact in event.task.artifacts)
        elif event.HasField("status_update"):
            states.append(event.status_update.status.state)
        elif event.HasField("artifact_update"):
            artifacts.append(parts_value(event.artifact_update.artifact.parts))
    return states, last, artifacts


def test_gateway_serves_tasks_streams_input_cancel_and_workflows(client, redis_url):
    with (
        serving_team(client, redis_url),
        announced_server("a2a", "--url", redis_url, "--port", "0") as url,
    ):
        asyncio.run(asyncio.wait_for(scenario(client, url), 60))


async def scenario(agentfn_client, url: str) -> None:
    streaming = await create_client(url, ClientConfig(streaming=True))
    blocking = await create_client(url, ClientConfig(streaming=False))
    card = streaming._card
    assert [skill.id for skill in card.skills] == [
        "hold",
        "research",
        "review",
        "write",
        "workflow",
    ]
    assert card.capabilities.streaming and card.supported_interfaces[0].url == url

    # A message for a skill becomes a task served by the agent process; its states stream in.
    states, last, artifacts = await stream(streaming, message("streams", skill="research"))
    assert states[-1] == S.TASK_STATE_COMPLETED  # (a fast agent may finish before the first read)
    assert states == sorted(
        states, key=[S.TASK_STATE_SUBMITTED, S.TASK_STATE_WORKING, S.TASK_STATE_COMPLETED].index
    )
    assert artifacts == [{"topic": "streams", "notes": "notes on streams"}]
    task_id = last.task.id if last.HasField("task") else last.status_update.task_id
    fetched = await blocking.get_task(GetTaskRequest(id=task_id))
    assert fetched.status.state == S.TASK_STATE_COMPLETED
    assert (
        agentfn_client.get_workflow(task_id).state.value == "completed"
    )  # the task is the workflow

    # input-required: the stream stops there; a message with the task id answers it (wf_signal).
    states, last, _ = await stream(streaming, message({"title": "A2A"}, skill="review"))
    assert states[-1] == S.TASK_STATE_INPUT_REQUIRED
    review_id, status = (
        (last.task.id, last.task.status)
        if last.HasField("task")
        else (last.status_update.task_id, last.status_update.status)
    )
    assert parts_value(status.message.parts) == {"question": "publish {'title': 'A2A'}?"}
    states, last, artifacts = await stream(streaming, message("yes", task_id=review_id))
    assert states[-1] == S.TASK_STATE_COMPLETED
    assert artifacts == [{"reviewed": {"title": "A2A"}, "answer": "yes"}]
    with pytest.raises(
        UnsupportedOperationError, match="is completed"
    ):  # a finished task takes no more
        await stream(streaming, message("again", task_id=review_id))

    # Cancel another while its stream is open: working (its handler runs until canceled), canceled.
    events = streaming.send_message(message({"n": 1}, skill="hold"))
    states = []
    async for event in events:
        update = event.task if event.HasField("task") else event.status_update
        states.append(update.status.state)
        if update.status.state == S.TASK_STATE_WORKING:
            held_id = event.task.id if event.HasField("task") else update.task_id
            canceled = await blocking.cancel_task(CancelTaskRequest(id=held_id))
            assert canceled.status.state == S.TASK_STATE_CANCELED
    assert states[-2:] == [S.TASK_STATE_WORKING, S.TASK_STATE_CANCELED]
    step_task = agentfn_client.get_workflow(held_id).steps[0].task
    assert agentfn_client.get_task(step_task).state == "canceled"  # in Redis too
    with pytest.raises(TaskNotCancelableError):
        await blocking.cancel_task(CancelTaskRequest(id=held_id))

    # return_immediately: the task as it is just after it was created.
    [response] = [
        event
        async for event in blocking.send_message(_immediately(message("later", skill="research")))
    ]
    assert response.task.status.state in (
        S.TASK_STATE_SUBMITTED,
        S.TASK_STATE_WORKING,
        S.TASK_STATE_COMPLETED,
    )

    # Refused work is rejected; an unknown task is not found.
    [response] = [event async for event in blocking.send_message(message("x", skill="nobody"))]
    assert response.task.status.state == S.TASK_STATE_REJECTED
    assert parts_value(response.task.status.message.parts) == "NOTFOUND no live agent serves nobody"
    with pytest.raises(TaskNotFoundError):
        await blocking.get_task(GetTaskRequest(id="no-such-task"))

    # The workflow skill: a graph of steps, one artifact per completed step (blocking send).
    graph = {
        "steps": [
            {"id": "r", "capability": "research", "input": {"topic": "fan-in"}},
            {"id": "w", "capability": "write", "depends_on": ["r"]},
        ],
        "context": {"audience": "a2a"},
    }
    [response] = [event async for event in blocking.send_message(message(graph, skill="workflow"))]
    assert response.task.status.state == S.TASK_STATE_COMPLETED
    assert {
        artifact.artifact_id: parts_value(artifact.parts) for artifact in response.task.artifacts
    } == {
        "r": {"topic": "fan-in", "notes": "notes on fan-in"},
        "w": {"article": "notes on fan-in", "audience": "a2a"},
    }
    await streaming.close()
    await blocking.close()


def _immediately(request: SendMessageRequest) -> SendMessageRequest:
    request.configuration.return_immediately = True
    return request


def test_remote_agents_serve_workflow_steps_through_a_gateway(client, r, redis_url):
    """Namespace 'remote' behind `agentfn a2a`; in 'default', RemoteAgents forward two steps of a
    workflow to it: the research result flows into a local write step, and the remote review's
    input-required comes back as the step's, answered with wf_signal."""
    agentfn.deploy(r, "remote")
    remote_client = agentfn.Client(r, "remote")
    with (
        bridge_agents.serving_team(remote_client, redis_url),
        announced_server("a2a", "--url", redis_url, "--namespace", "remote", "--port", "0") as url,
    ):
        researcher = RemoteAgent(url, "remote-research", skill="research", client=client)
        reviewer = RemoteAgent(url, "remote-review", skill="review", client=client)
        writer = agentfn.Agent(client, "writer-1")
        writer.handler("write")(bridge_agents.write)
        with serving(researcher), serving(reviewer), serving(writer):
            workflow_id = client.create_workflow(
                [
                    {"id": "r", "capability": "remote-research", "input": {"topic": "remote"}},
                    {"id": "w", "capability": "write", "input": {}},
                    {"id": "v", "capability": "remote-review", "input": {"title": "remote"}},
                ],
                chain=True,
            )
            asking = client.wait_workflow(workflow_id, timeout=30, until_input=True)
            prompt = asking.step("v").prompt
            assert prompt["prompt"] == {"question": "publish {'title': 'remote'}?"}
            remote_task = remote_client.get_workflow(prompt["a2a_task_id"])  # the gateway's task
            assert remote_task.step("review").state.value == "input-required"
            client.signal(workflow_id, "v", "ship it")
            info = client.wait_workflow(workflow_id, timeout=30)
    assert info.state.value == "completed", info
    assert info.results == {
        "r": {"topic": "remote", "notes": "notes on remote"},
        "w": {"article": "notes on remote", "audience": None},
        "v": {"reviewed": {"title": "remote"}, "answer": "ship it"},
    }
    assert client.get_task(info.step("r").task).agent == "a2a-remote-research"


def test_the_readme_maps_every_a2a_task_state():
    """The README's state table has one row per A2A state the gateway uses, in the SDK's names."""
    rows = re.findall(r"^\| `([a-z-]+)` +\|", README, flags=re.M)
    names = set(S.keys())
    states = [state for state in rows if "TASK_STATE_" + state.upper().replace("-", "_") in names]
    assert states == [
        "submitted",
        "working",
        "input-required",
        "completed",
        "failed",
        "canceled",
        "rejected",
    ]


def _card_fetches(caplog: pytest.LogCaptureFixture) -> int:
    """The agent cards fetched in this process, as httpx logs each request it made."""
    return sum("agent-card.json" in record.getMessage() for record in caplog.records)


def test_a_remote_agent_keeps_the_card_and_fetches_it_again_after_a_failure(
    client, r, redis_url, caplog
):
    """One card fetch for three tasks; the gateway gone, a task fails and the card is dropped;
    the gateway back on the same port, the next task fetches it again. One RemoteAgent serves
    throughout."""
    caplog.set_level(logging.INFO, logger="httpx")
    agentfn.deploy(r, "remote")
    port = free_port()
    gateway = ("a2a", "--url", redis_url, "--namespace", "remote", "--port", str(port))
    researcher = RemoteAgent(
        f"http://127.0.0.1:{port}/", "remote-research", skill="research", client=client
    )
    with bridge_agents.serving_team(agentfn.Client(r, "remote"), redis_url), serving(researcher):
        with announced_server(*gateway) as url:
            assert url == researcher.url
            for n in range(3):
                task_id = client.submit("remote-research", {"topic": f"t{n}"})
                done = wait_for_task(client, task_id, {"completed"}, timeout=30)
                assert done.result == {"topic": f"t{n}", "notes": f"notes on t{n}"}
        assert _card_fetches(caplog) == 1 and researcher.card is not None
        lost = client.submit("remote-research", {"topic": "lost"}, max_attempts=1)
        assert wait_for_task(client, lost, {"dead"}, timeout=30).state == "dead"
        assert researcher.card is None
        with announced_server(*gateway):
            task_id = client.submit("remote-research", {"topic": "back"})
            done = wait_for_task(client, task_id, {"completed"}, timeout=30)
            assert done.result["topic"] == "back"
    assert _card_fetches(caplog) == 2


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
def test_the_worker_logs_http_requests_only_at_debug(client, r, redis_url, level, shown):
    """`agentfn worker` serving a RemoteAgent: httpx's line per request only with DEBUG."""
    agentfn.deploy(r, "remote")
    with (
        bridge_agents.serving_team(agentfn.Client(r, "remote"), redis_url),
        announced_server("a2a", "--url", redis_url, "--namespace", "remote", "--port", "0") as url,
    ):
        worker = spawn_worker(
            redis_url,
            "tests.a2a_agents:remote_research",
            "--log-level",
            level,
            env={"AGENTFN_TEST_A2A_URL": url},
        )
        try:
            wait_for(client, lambda: client.agent_find("remote-research"), "the worker", 30)
            task_id = client.submit("remote-research", {"topic": "logs"})
            wait_for_task(client, task_id, {"completed"}, timeout=30)
        finally:
            worker.terminate()
            _, stderr = worker.communicate(timeout=30)
    assert f" {level} " in stderr or f"{level} " in stderr, stderr  # it logs at that level
    assert ("HTTP Request: POST" in stderr) is shown, stderr
