"""`agentfn a2a`: an A2A server (official ``a2a-sdk``, protocol 1.0 over JSON-RPC) for a namespace.

One agent card for the namespace with one skill per live capability (plus ``workflow``),
regenerated from the registry on every card request. A message becomes an agentfn workflow
(one step for a skill; the steps it carries for ``workflow``); the A2A task id is the workflow
id. Every request handler method is one or two library calls; following a task (streaming,
SubscribeToTask, a blocking SendMessage) blocks on the workflow's Pub/Sub channel and the
namespace's event channel, never polls. See :mod:`agentfn.a2a.mapping` for the state table.

How a message picks its work: ``metadata.skill`` names a capability (with one live capability
it may be left out); the payload is the first data part, else ``{"text": <the text parts>}``.
``metadata.skill = "workflow"``: the first data part is ``{"steps": [...], "policy", "chain",
"context"}`` as ``Client.create_workflow`` takes them. A message with the ``taskId`` of a task
in input-required answers it (``agentfn_wf_signal``; ``metadata.step`` picks the step when
several ask), with the first data part, else the text, as the value.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers import RequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatusUpdateEvent,
)
from a2a.utils.errors import (
    ExtendedAgentCardNotConfiguredError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from starlette.applications import Starlette

from ..client.api.workflows import WorkflowInfo
from ..client.client import AsyncClient
from ..client.waiting import EventFollower
from ..constants import StepState
from ..errors import BadArgument, CycleError, InvalidState, LimitExceeded, NotFound
from ..version import __version__
from . import mapping

#: The skill id that takes a whole workflow definition.
WORKFLOW_SKILL = "workflow"

#: Longest a blocking SendMessage waits before it returns the task as it is (s).
BLOCKING_WAIT_S = 60.0

#: Longest one block on the channels while following a task (s); following then goes on.
_BLOCK_S = 30.0

#: Refusals of agentfn_wf_create that make a task rejected rather than an error.
_REFUSALS = (BadArgument, CycleError, LimitExceeded, InvalidState)

Event = Task | Message | TaskStatusUpdateEvent | TaskArtifactUpdateEvent


class _Rejected(Exception):
    """The message cannot become a workflow; the text says why (the task is rejected)."""


class AgentfnRequestHandler(RequestHandler):
    """A2A requests onto one namespace's library functions."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    # -- reading ---------------------------------------------------------------------------

    async def _workflow(self, task_id: str) -> WorkflowInfo:
        try:
            return await self.client.get_workflow(task_id)
        except (NotFound, BadArgument):
            raise TaskNotFoundError(f"task {task_id} not found") from None

    async def _context_id(self, info: WorkflowInfo) -> str:
        document = (await self.client.ctx_get(info.id)).document
        return str(document.get(mapping.CONTEXT_FIELD) or info.id)

    async def _task(self, info: WorkflowInfo) -> Task:
        return mapping.task(info, await self._context_id(info))

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        return await self._task(await self._workflow(params.id))

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        raise UnsupportedOperationError("agentfn keeps no index of workflows to list")

    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        info = await self._workflow(params.id)
        if info.done:
            raise TaskNotCancelableError(f"task {info.id} is already {info.state.value}")
        try:
            await self.client.cancel_workflow(info.id)
        except InvalidState:
            raise TaskNotCancelableError(f"task {info.id} is already {info.state.value}") from None
        return await self._task(await self._workflow(info.id))

    # -- submitting ------------------------------------------------------------------------

    async def _definition(
        self, message: Message, request_metadata: dict[str, Any]
    ) -> dict[str, Any]:
        """create_workflow's arguments for a new task's message (raises _Rejected)."""
        metadata = {**request_metadata, **mapping.struct_dict(message.metadata)}
        value = mapping.parts_value(message.parts)
        skill = metadata.get("skill")
        if skill == WORKFLOW_SKILL:
            if not isinstance(value, dict) or not isinstance(value.get("steps"), list):
                raise _Rejected('BADARG the workflow skill takes a data part {"steps": [...]}')
            return {
                "steps": value["steps"],
                "policy": value.get("policy", "fail_fast"),
                "chain": bool(value.get("chain", False)),
                "context": value.get("context") or {},
            }
        live = sorted(
            {
                capability
                for agent in await self.client.agent_find()
                for capability in agent.capabilities
            }
        )
        if skill is None and len(live) == 1:
            skill = live[0]
        if skill is None:
            raise _Rejected(
                f"BADARG name a skill in the message metadata (skill): one of {', '.join(live)}"
            )
        if skill not in live:
            raise _Rejected(f"NOTFOUND no live agent serves {skill}")
        payload = value if isinstance(value, dict) or value is None else {"text": value}
        return {"steps": [{"id": skill, "capability": skill, "input": payload}], "context": {}}

    async def _create(self, message: Message, request_metadata: dict[str, Any]) -> tuple[str, str]:
        """Create the workflow for a new task; (task id, context id). _Rejected when refused."""
        task_id = str(uuid.uuid4())
        context_id = message.context_id or str(uuid.uuid4())
        definition = await self._definition(message, request_metadata)
        context = {**definition.pop("context"), mapping.CONTEXT_FIELD: context_id}
        try:
            await self.client.create_workflow(workflow_id=task_id, context=context, **definition)
        except _REFUSALS as error:
            raise _Rejected(str(error)) from None
        return task_id, context_id

    async def _answer(self, message: Message) -> str:
        """Signal the input-required step a message with a task id answers; returns the task id."""
        info = await self._workflow(message.task_id)
        if info.done:
            raise UnsupportedOperationError(
                f"task {info.id} is {info.state.value}: it takes no more messages"
            )
        asking = [step.id for step in info.steps if step.state == StepState.INPUT_REQUIRED]
        chosen = mapping.struct_dict(message.metadata).get("step")
        if chosen is None and len(asking) == 1:
            chosen = asking[0]
        if chosen not in asking:
            raise InvalidParamsError(
                f"task {info.id} has no step {chosen!r} waiting for input "
                f"(waiting: {', '.join(asking) or 'none'})"
            )
        try:
            await self.client.signal(info.id, chosen, mapping.parts_value(message.parts))
        except (InvalidState, BadArgument) as error:
            raise InvalidParamsError(str(error)) from None
        return info.id

    async def _start(self, params: SendMessageRequest) -> Callable[[], Awaitable[str | Task]]:
        """What sending the message does, to run once the follower listens: the task id it
        created or answered, or the rejected task."""
        message = params.message

        async def start() -> str | Task:
            if message.task_id:
                return await self._answer(message)
            try:
                return (await self._create(message, mapping.struct_dict(params.metadata)))[0]
            except _Rejected as refusal:
                return mapping.rejected(
                    str(uuid.uuid4()), message.context_id or str(uuid.uuid4()), str(refusal)
                )

        return start

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        """SendMessage: create (or answer) the task; unless return_immediately, wait until it is
        done or asks for input, at most BLOCKING_WAIT_S, and return it as it is then."""
        started = await (await self._start(params))()
        if isinstance(started, Task):
            return started
        if not params.configuration.return_immediately:
            with contextlib.suppress(TimeoutError):
                await self.client.wait_workflow(started, BLOCKING_WAIT_S, until_input=True)
        return await self._task(await self._workflow(started))

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        """SendStreamingMessage: the task, then each change of state, until it ends or asks."""
        start = await self._start(params)
        async for event in self._follow(start):
            yield event

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        """SubscribeToTask: the task as it is, then each change of state, until it ends or asks."""
        info = await self._workflow(params.id)
        if info.done:
            raise UnsupportedOperationError(
                f"task {info.id} is {info.state.value}: nothing more will happen"
            )

        async def existing() -> str:
            return info.id

        async for event in self._follow(existing):
            yield event

    async def _follow(self, start: Callable[[], Awaitable[str | Task]]) -> AsyncIterator[Event]:
        """Listen, run ``start``, then yield the task and its changes of state (artifacts before
        the final status) until it is terminal or input-required.

        Listening first (the namespace's event stream, from its newest entry) means no change
        after ``start`` is missed: an event names a workflow transition, or a task that started
        running; the workflow is read again only for those about this task.
        """
        events = EventFollower(self.client.redis, self.client.namespace)
        await events.start()
        started = await start()
        if isinstance(started, Task):
            yield started
            return
        info = await self._workflow(started)
        context_id = await self._context_id(info)
        state = mapping.task_state(info)
        yield mapping.task(info, context_id)
        while state not in mapping.TERMINAL | mapping.INTERRUPTED:
            if not any(self._about(event, info) for event in await events.next(_BLOCK_S)):
                continue
            info = await self._workflow(started)
            if mapping.task_state(info) == state:
                continue
            state = mapping.task_state(info)
            if state == TaskState.TASK_STATE_COMPLETED:
                for artifact in mapping.artifacts(info):
                    yield TaskArtifactUpdateEvent(
                        task_id=info.id,
                        context_id=context_id,
                        artifact=artifact,
                        last_chunk=True,
                    )
            yield mapping.status_event(info, context_id)

    @staticmethod
    def _about(event: dict[str, str], info: WorkflowInfo) -> bool:
        """True for an event of the workflow, or of a task of one of its steps that started."""
        if event.get("workflow") == info.id:
            return True
        return event.get("type") == "task.running" and event.get("task") in {
            step.task for step in info.steps if step.task
        }

    # -- not offered -----------------------------------------------------------------------

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError()

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError()

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError()

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError()

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise ExtendedAgentCardNotConfiguredError()


WORKFLOW = AgentSkill(
    id=WORKFLOW_SKILL,
    name="workflow",
    tags=["agentfn", "workflow"],
    description='a graph of steps over the capabilities: a data part {"steps": [{"id", "capability", "input", '
    '"depends_on"}], "policy", "chain", "context"}; each step gets its dependencies\' results; one '
    "artifact per completed step",
    input_modes=["application/json"],
    output_modes=["application/json"],
)


async def capability_skills(client: AsyncClient) -> list[AgentSkill]:
    """One skill per live capability, saying who serves it."""
    serving: dict[str, list[str]] = {}
    for agent in await client.agent_find():
        for capability in agent.capabilities:
            serving.setdefault(capability, []).append(agent.id)
    return [
        AgentSkill(
            id=capability,
            name=capability,
            tags=["agentfn", "capability"],
            description=f"the {capability} capability of namespace {client.namespace}, served by "
            f"{len(agents)} live agent(s): {', '.join(sorted(agents))}",
            input_modes=["application/json", "text/plain"],
            output_modes=["application/json"],
        )
        for capability, agents in sorted(serving.items())
    ]


def agent_card(client: AsyncClient, url: str) -> AgentCard:
    """The namespace's card with the workflow skill (each request adds the live capabilities')."""
    return AgentCard(
        name=f"agentfn {client.namespace}",
        description=f"The agents of agentfn namespace {client.namespace}: one skill per live capability.",
        version=__version__,
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json"],
        skills=[WORKFLOW],
    )


def build_app(client: AsyncClient, url: str) -> Starlette:
    """The gateway as an ASGI app: the card at /.well-known/agent-card.json, JSON-RPC at /."""
    card = agent_card(client, url)

    async def live_card(served: AgentCard) -> AgentCard:
        current = AgentCard()
        current.CopyFrom(served)
        del current.skills[:]
        current.skills.extend([*await capability_skills(client), *served.skills])
        return current

    routes = [
        *create_agent_card_routes(card, card_modifier=live_card),
        *create_jsonrpc_routes(AgentfnRequestHandler(client), "/"),
    ]
    return Starlette(routes=routes)
