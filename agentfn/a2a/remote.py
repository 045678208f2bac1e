"""RemoteAgent: a remote A2A agent serves a capability in a namespace.

It is an :class:`agentfn.Agent` whose one handler forwards each task to the A2A agent at
``url`` (a2a-sdk client; streaming when the card offers it) and returns what the remote task
produced, so an external agent joins workflows as a step:

    remote = RemoteAgent("http://translator.example:9000/", "translate")
    remote.bind(agentfn.Client(connection)).run()      # or: agentfn worker mymodule:remote

- the message carries the task's payload as its part (a string as text, anything else as
  data) and ``metadata = {"skill": <skill>, "agentfn": {task, workflow, step, inputs}}``;
- completed: the result is the value of the only artifact, else ``{artifact name: value}``
  (a plain reply message: its value);
- input-required: the step asks for input with ``{"prompt", "a2a_task_id", "a2a_context_id"}``;
  once the workflow is signalled the step runs again and the answer goes to the same remote
  task, which then goes on;
- failed, rejected, canceled: the attempt fails for good (PermanentFailure) with the remote
  status message; an unreachable agent fails the attempt (retried with backoff).

The remote agent card is fetched once per RemoteAgent and kept; a task that cannot reach the
agent drops it, so the next task fetches it again (the agent may have moved or changed).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.types import AgentCard, Message, Role, SendMessageRequest, Task, TaskState

from ..agent.agent import Agent
from ..agent.types import InputRequired, PermanentFailure, TaskContext
from ..client.client import Client
from .mapping import INTERRUPTED, TERMINAL, parts_value, value_part


class RemoteAgent(Agent):
    """An agentfn agent serving ``capability`` by forwarding each task to the A2A agent at ``url``.

    ``skill``: the remote skill to ask for (default: the capability's name). Every other
    argument is :class:`agentfn.Agent`'s (default id ``a2a-<capability>``, concurrency 4).
    """

    def __init__(
        self,
        url: str,
        capability: str,
        *,
        skill: str | None = None,
        client: Client | None = None,
        agent_id: str | None = None,
        concurrency: int = 4,
        **options: Any,
    ) -> None:
        super().__init__(
            client, agent_id or f"a2a-{capability}", concurrency=concurrency, **options
        )
        self.url = url
        self.skill = skill or capability
        self.card: AgentCard | None = None
        """The remote agent card, once fetched (None again after a task could not reach it)."""
        self.handler(capability)(self.forward)

    async def agent_card(self) -> AgentCard:
        """The remote agent card: the one kept, else fetched from ``url`` (and kept). Tasks that
        start together before the first fetch ends may each fetch it."""
        if self.card is None:
            async with httpx.AsyncClient() as http:
                self.card = await A2ACardResolver(http, self.url).get_agent_card()
        return self.card

    async def forward(self, task: TaskContext) -> Any:
        """The handler: one remote task per step (continued when the step was signalled)."""
        inputs = dict(task.inputs or {})
        answer = inputs.pop("_signal", None)
        metadata = {
            "skill": self.skill,
            "agentfn": {
                "task": task.id,
                "workflow": task.workflow,
                "step": task.step,
                "inputs": inputs,
            },
        }
        if answer is not None and task.workflow and task.step:
            client = self._bound_client()  # synchronous, even for an agent on an AsyncClient
            prompt = await asyncio.to_thread(_asked, client, task.workflow, task.step)
            message = _message(
                answer, prompt.get("a2a_task_id", ""), prompt.get("a2a_context_id", "")
            )
        else:
            message = _message(task.payload, "", "")
        message.metadata.update(metadata)
        remote = await create_client(await self.agent_card(), ClientConfig(streaming=True))
        try:
            return await _run(remote, message)
        except (InputRequired, PermanentFailure):
            raise  # what the remote task said: the agent was reached
        except Exception:
            self.card = None  # not reached (or not understood): fetch the card again next time
            raise
        finally:
            await remote.close()


async def _run(remote: Any, message: Message) -> Any:
    """Send; fold the events into the remote task until it ends or asks; its outcome."""
    task = Task()
    async for event in remote.send_message(SendMessageRequest(message=message)):
        if event.HasField("message"):  # a plain reply: no task
            return parts_value(event.message.parts)
        if event.HasField("task"):
            task.CopyFrom(event.task)
        elif event.HasField("status_update"):
            task.id, task.context_id = event.status_update.task_id, event.status_update.context_id
            task.status.CopyFrom(event.status_update.status)
        elif event.HasField("artifact_update"):
            artifact = event.artifact_update.artifact
            kept = [old for old in task.artifacts if old.artifact_id != artifact.artifact_id]
            del task.artifacts[:]
            task.artifacts.extend([*kept, artifact])
        if task.status.state in TERMINAL | INTERRUPTED:
            break
    return _task_outcome(task)


def _asked(client: Client, workflow_id: str, step_id: str) -> dict[str, Any]:
    """What the step asked for when it ended input-required (it names the remote task)."""
    prompt = client.get_workflow(workflow_id).step(step_id).prompt
    return prompt if isinstance(prompt, dict) else {}


def _message(value: Any, task_id: str, context_id: str) -> Message:
    return Message(
        message_id=str(uuid.uuid4()),
        role=Role.ROLE_USER,
        parts=[value_part(value)],
        task_id=task_id,
        context_id=context_id,
    )


def _task_outcome(task: Task) -> Any:
    state = task.status.state
    said = parts_value(task.status.message.parts)
    if state == TaskState.TASK_STATE_COMPLETED:
        values = {
            artifact.name or artifact.artifact_id: parts_value(artifact.parts)
            for artifact in task.artifacts
        }
        return next(iter(values.values())) if len(values) == 1 else values
    if state == TaskState.TASK_STATE_INPUT_REQUIRED:
        raise InputRequired(
            {"prompt": said, "a2a_task_id": task.id, "a2a_context_id": task.context_id}
        )
    if state in TERMINAL:
        raise PermanentFailure(f"remote task {task.id} {TaskState.Name(state)}: {said}")
    raise RuntimeError(f"remote task {task.id} stopped at {TaskState.Name(state)}")
