"""The MCP server: tools and resources over one :class:`agentfn.AsyncClient`.

Every tool is one or two library calls. A refusal from the library (``BADARG``, ``NOTFOUND``,
``STATE``, ``CONFLICT``, ``CYCLE``, ``LIMIT`` ...) comes back as a tool error whose text starts
with its code, so the model can read why and correct the call. Waits are bounded
(``timeout_s`` at most :data:`MAX_WAIT_S`) and never poll: a workflow wait blocks on the
workflow's Pub/Sub channel (``AsyncClient.wait_workflow``), a task wait on the namespace's
event stream (:func:`agentfn.mcp.waits.wait_task`), an inbox read in
``XREAD BLOCK``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import BaseModel, Field

from ..client.api.messages import Message
from ..client.api.registry import AgentInfo
from ..client.api.tasks import TaskInfo
from ..client.api.workflows import StepInfo, WorkflowInfo
from ..client.client import AsyncClient
from ..constants import LIMITS, StepState
from ..errors import AgentfnError
from ..version import __version__
from .waits import FINAL_TASK_STATES, wait_task

#: Longest wait one tool call may ask for (s); the model calls again to wait longer.
MAX_WAIT_S = 300.0

INSTRUCTIONS = """\
Coordinate a team of AI agents through agentfn. find_agents shows who serves which capability.
submit_task hands one job to any agent with a capability; create_workflow runs a graph of steps
(each step a task; a step receives its dependencies' results). wait_task / wait_workflow block
until the work finishes (or a step asks for input: answer it with answer_input). Workflows share
a versioned context document (read_context / write_context). send_message and read_inbox talk
to agents directly. Errors start with a code: BADARG, NOTFOUND, STATE, CONFLICT, CYCLE, LIMIT."""

Seconds = Annotated[
    float, Field(ge=0, le=MAX_WAIT_S, description=f"how long to wait, at most {MAX_WAIT_S:g} s")
]
JsonValue = Annotated[Any, Field(description="any JSON value")]


class AgentView(BaseModel):
    """A live agent and the capabilities it serves."""

    id: str
    capabilities: list[str]
    status: str
    metadata: dict[str, Any]
    expires_ms: int = Field(description="liveness deadline, server clock (ms)")


class TaskView(BaseModel):
    """A task's record."""

    id: str
    capability: str
    state: str = Field(description="queued, delayed, running, completed, failed, dead or canceled")
    done: bool = Field(
        description="true once the state is final (completed, failed, dead, canceled)"
    )
    attempt: int
    max_attempts: int
    priority: str
    agent: str | None = Field(description="the current or last agent that ran it")
    payload: Any
    result: Any
    error: str | None
    workflow: str | None
    step: str | None


class StepView(BaseModel):
    """One workflow step."""

    id: str
    capability: str
    state: str = Field(
        description="waiting, queued, input-required, completed, failed, skipped or canceled"
    )
    depends_on: list[str]
    task: str | None
    attempts: int
    result: Any
    error: str | None
    prompt: Any = Field(description="what the step asks for while input-required")


class WorkflowView(BaseModel):
    """A workflow and its steps."""

    id: str
    state: str = Field(description="running, completed, failed or canceled")
    done: bool
    error: str | None
    remaining: int
    input_required: list[str] = Field(description="ids of the steps waiting for answer_input")
    results: dict[str, Any] = Field(description="step id -> result of every completed step")
    steps: list[StepView]


class StepSpec(BaseModel):
    """One step of a workflow definition."""

    id: str = Field(description="step id, unique in the workflow")
    capability: str = Field(description="the capability whose agents run it")
    input: Any = Field(default=None, description="the step task's payload (any JSON value)")
    depends_on: list[str] = Field(
        default_factory=list, description="ids of steps that must complete first"
    )
    max_attempts: int | None = Field(default=None, ge=1)
    timeout_ms: int | None = Field(default=None, ge=1)
    priority: Literal["high", "normal", "low"] | None = None


class MessageView(BaseModel):
    """One inbox message."""

    id: str
    sender: str
    type: str
    content: Any
    reply_to: str | None
    redelivered: bool


class InboxView(BaseModel):
    """Messages read from the server's own inbox."""

    agent_id: str
    messages: list[MessageView]


class ContextView(BaseModel):
    """A workflow's shared context document and its version (the number of writes)."""

    document: dict[str, Any]
    version: int


def agent_view(info: AgentInfo) -> AgentView:
    return AgentView(
        id=info.id,
        capabilities=list(info.capabilities),
        status=info.status,
        metadata=info.metadata,
        expires_ms=info.expires_ms,
    )


def task_view(info: TaskInfo) -> TaskView:
    return TaskView(
        id=info.id,
        capability=info.capability,
        state=info.state,
        done=info.state in FINAL_TASK_STATES,
        attempt=info.attempt,
        max_attempts=info.max_attempts,
        priority=info.priority,
        agent=info.agent,
        payload=info.payload,
        result=info.result,
        error=info.error,
        workflow=info.workflow,
        step=info.step,
    )


def step_view(step: StepInfo) -> StepView:
    return StepView(
        id=step.id,
        capability=step.capability,
        state=step.state.value,
        depends_on=list(step.depends_on),
        task=step.task,
        attempts=step.attempts,
        result=step.result,
        error=step.error,
        prompt=step.prompt,
    )


def workflow_view(info: WorkflowInfo) -> WorkflowView:
    return WorkflowView(
        id=info.id,
        state=info.state.value,
        done=info.done,
        error=info.error,
        remaining=info.remaining,
        input_required=[step.id for step in info.steps if step.state == StepState.INPUT_REQUIRED],
        results=info.results,
        steps=[step_view(step) for step in info.steps],
    )


def message_view(message: Message) -> MessageView:
    return MessageView(
        id=message.id,
        sender=message.sender,
        type=message.type,
        content=message.content,
        reply_to=message.reply_to,
        redelivered=message.redelivered,
    )


@contextmanager
def coded_errors() -> Iterator[None]:
    """A library refusal (or a client-side check) as a tool error that starts with its code."""
    try:
        yield
    except AgentfnError as error:
        raise ToolError(str(error)) from None
    except ValueError as error:
        raise ToolError(f"BADARG {error}") from None


def build_server(client: AsyncClient, agent_id: str) -> MCPServer:
    """An MCP server whose tools act in ``client``'s namespace; ``agent_id`` is its own identity
    (the sender of its messages, the owner of the inbox read_inbox reads)."""
    server = MCPServer(
        "agentfn", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING"
    )

    @server.tool()
    async def find_agents(
        capability: Annotated[
            str | None, Field(description="only agents with this capability; all when omitted")
        ] = None,
        limit: Annotated[int | None, Field(ge=1, le=LIMITS["find_count"])] = None,
    ) -> list[AgentView]:
        """Live agents (optionally only those serving one capability) and their capabilities."""
        with coded_errors():
            return [agent_view(info) for info in await client.agent_find(capability, limit=limit)]

    @server.tool()
    async def submit_task(
        capability: Annotated[str, Field(description="the capability that serves it")],
        payload: JsonValue = None,
        priority: Literal["high", "normal", "low"] = "normal",
        idempotency_key: Annotated[
            str | None,
            Field(
                description="a retry with the same key returns the first task instead of a new one"
            ),
        ] = None,
        max_attempts: Annotated[int | None, Field(ge=1)] = None,
        timeout_ms: Annotated[
            int | None, Field(ge=1, description="how long one attempt may run")
        ] = None,
    ) -> TaskView:
        """Queue a task for any agent with the capability; returns the task (wait_task waits for it)."""
        with coded_errors():
            task_id = await client.submit(
                capability,
                payload,
                priority=priority,
                idempotency_key=idempotency_key,
                max_attempts=max_attempts,
                timeout_ms=timeout_ms,
            )
            return task_view(await client.get_task(task_id))

    @server.tool()
    async def get_task(task_id: str) -> TaskView:
        """A task's state, result and error."""
        with coded_errors():
            return task_view(await client.get_task(task_id))

    @server.tool(name="wait_task")
    async def wait_task_tool(task_id: str, timeout_s: Seconds = 30.0) -> TaskView:
        """Block until the task is done (completed, failed, dead, canceled) or timeout_s passes;
        returns the task either way (``done`` tells which)."""
        with coded_errors():
            return task_view(await wait_task(client, task_id, timeout_s))

    @server.tool()
    async def cancel_task(task_id: str) -> TaskView:
        """Cancel an unfinished task."""
        with coded_errors():
            await client.cancel(task_id)
            return task_view(await client.get_task(task_id))

    @server.tool()
    async def create_workflow(
        steps: Annotated[list[StepSpec], Field(min_length=1)],
        chain: Annotated[bool, Field(description="each step depends on the one before it")] = False,
        policy: Literal["fail_fast", "continue"] = "fail_fast",
        workflow_id: Annotated[
            str | None, Field(description="an id of your choosing (default: generated)")
        ] = None,
        context: Annotated[
            dict[str, Any] | None, Field(description="the initial shared context document")
        ] = None,
    ) -> WorkflowView:
        """Create a workflow: a graph of steps, each a task for a capability; a step starts once
        every step it depends on completed, with their results as its inputs."""
        with coded_errors():
            definition = [
                step.model_dump(exclude_none=True, exclude_defaults=False) for step in steps
            ]
            for step in definition:
                if not step["depends_on"]:
                    del step["depends_on"]
            created = await client.create_workflow(
                definition, chain=chain, policy=policy, workflow_id=workflow_id, context=context
            )
            return workflow_view(await client.get_workflow(created))

    @server.tool()
    async def get_workflow(workflow_id: str) -> WorkflowView:
        """A workflow's state and every step's state, result and prompt."""
        with coded_errors():
            return workflow_view(await client.get_workflow(workflow_id))

    @server.tool(name="wait_workflow")
    async def wait_workflow_tool(
        workflow_id: str,
        timeout_s: Seconds = 30.0,
        until_input: Annotated[
            bool, Field(description="also return when a step asks for input")
        ] = True,
    ) -> WorkflowView:
        """Block until the workflow finishes (or, with until_input, a step asks for input) or
        timeout_s passes; returns the workflow either way (``done`` tells which)."""
        with coded_errors():
            try:
                return workflow_view(
                    await client.wait_workflow(workflow_id, timeout_s, until_input=until_input)
                )
            except TimeoutError:
                return workflow_view(await client.get_workflow(workflow_id))

    @server.tool()
    async def cancel_workflow(workflow_id: str) -> WorkflowView:
        """Cancel a running workflow and its unfinished steps."""
        with coded_errors():
            await client.cancel_workflow(workflow_id)
            return workflow_view(await client.get_workflow(workflow_id))

    @server.tool()
    async def answer_input(workflow_id: str, step_id: str, value: JsonValue) -> WorkflowView:
        """Answer a step that asks for input (state input-required): it runs again with
        ``inputs["_signal"]`` = value."""
        with coded_errors():
            await client.signal(workflow_id, step_id, value)
            return workflow_view(await client.get_workflow(workflow_id))

    @server.tool()
    async def read_context(workflow_id: str) -> ContextView:
        """A workflow's shared context document and its version."""
        with coded_errors():
            context = await client.ctx_get(workflow_id)
            return ContextView(document=context.document, version=context.version)

    @server.tool()
    async def write_context(
        workflow_id: str,
        document: dict[str, Any],
        mode: Annotated[
            Literal["set", "merge"],
            Field(
                description="set replaces the document; merge sets "
                "top-level fields (null removes one)"
            ),
        ] = "merge",
        expect_version: Annotated[
            int | None,
            Field(ge=0, description="refused with CONFLICT unless this is the current version"),
        ] = None,
    ) -> ContextView:
        """Write a workflow's shared context (compare-and-set with expect_version)."""
        with coded_errors():
            await client.ctx_set(workflow_id, document, mode=mode, expect_version=expect_version)
            context = await client.ctx_get(workflow_id)
            return ContextView(document=context.document, version=context.version)

    @server.tool()
    async def send_message(
        to: Annotated[str, Field(description="the recipient agent id")],
        type: Annotated[str, Field(description="the message type the recipient handles")],
        content: JsonValue = None,
        reply_to: Annotated[
            str | None, Field(description="the id of the message this answers")
        ] = None,
    ) -> MessageView:
        """Send a message from this server's agent id to an agent's durable inbox."""
        with coded_errors():
            message_id = await client.send(agent_id, to, type, content, reply_to=reply_to)
            return MessageView(
                id=message_id,
                sender=agent_id,
                type=type,
                content=content,
                reply_to=reply_to,
                redelivered=False,
            )

    @server.tool()
    async def read_inbox(
        timeout_s: Seconds = 0.0,
        count: Annotated[int, Field(ge=1, le=LIMITS["message_batch"])] = 10,
        ack: Annotated[
            list[str], Field(description="ids of messages handled, acknowledged first")
        ] = [],  # noqa: B006
    ) -> InboxView:
        """Messages in this server's own inbox (replies land here), waiting up to timeout_s for one.
        A message comes back until its id is passed in ``ack``."""
        with coded_errors():
            messages = await client.receive(agent_id, timeout_s, count=count, ack=ack)
            return InboxView(
                agent_id=agent_id, messages=[message_view(message) for message in messages]
            )

    @server.resource("agentfn://fleet", mime_type="application/json")
    async def fleet() -> dict[str, Any]:
        """The live agents and, for each capability, who serves it."""
        agents = await client.agent_find()
        capabilities: dict[str, list[str]] = {}
        for info in agents:
            for capability in info.capabilities:
                capabilities.setdefault(capability, []).append(info.id)
        return {
            "namespace": client.namespace,
            "agents": [agent_view(info).model_dump() for info in agents],
            "capabilities": capabilities,
        }

    @server.resource("agentfn://workflows/{workflow_id}", mime_type="application/json")
    async def workflow_state(workflow_id: str) -> dict[str, Any]:
        """A workflow's state and steps."""
        try:
            return workflow_view(await client.get_workflow(workflow_id)).model_dump()
        except AgentfnError as error:
            raise ResourceError(str(error)) from None

    return server
