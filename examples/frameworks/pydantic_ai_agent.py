"""A pydantic-ai agent as an agentfn handler: its tools use agentfn (a subtask for another agent,
the workflow's shared context). The model is pydantic-ai's offline FunctionModel: no network,
no key; swap in a real model name ("openai:gpt-4o", ...) and nothing else changes.

    pip install 'agentfn[pydantic-ai]'
    python examples/frameworks/pydantic_ai_agent.py
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

import agentfn


@dataclass
class Team:
    """What the LLM agent's tools reach: the agentfn client and the workflow it works in."""

    client: agentfn.Client
    workflow: str | None


def scripted_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Stands in for an LLM: first call both tools, then answer from what they returned."""
    returns = {
        part.tool_name: part.content
        for message in messages
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    }
    if not returns:
        topic = next(
            part.content
            for message in messages
            for part in message.parts
            if isinstance(part, UserPromptPart)
        )
        return ModelResponse(
            parts=[
                ToolCallPart("ask_researcher", {"topic": topic}),
                ToolCallPart("read_context", {}),
            ]
        )
    notes, context = returns["ask_researcher"]["notes"], returns["read_context"]
    return ModelResponse(parts=[TextPart(f"For {context['audience']}: {notes}.")])


analyst_llm = Agent(
    FunctionModel(scripted_model),
    deps_type=Team,
    instructions="Answer with the researcher's notes, for the workflow's audience.",
)


@analyst_llm.tool
def ask_researcher(ctx: RunContext[Team], topic: str) -> dict:
    """Ask the research agents about a topic (a one-step workflow; waits for its result)."""
    workflow_id = ctx.deps.client.create_workflow(
        [{"id": "research", "capability": "research", "input": {"topic": topic}}]
    )
    return ctx.deps.client.wait_workflow(workflow_id, timeout=30).results["research"]


@analyst_llm.tool
def read_context(ctx: RunContext[Team]) -> dict:
    """The shared context document of the workflow this step belongs to."""
    return ctx.deps.client.ctx_get(ctx.deps.workflow).document if ctx.deps.workflow else {}


analyst = agentfn.Agent(None, "analyst-1")


@analyst.handler("analyze")
async def analyze(task: agentfn.TaskContext) -> dict:
    run = await analyst_llm.run(task.payload["topic"], deps=Team(task.client, task.workflow))
    return {"answer": run.output}


researcher = agentfn.Agent(None, "researcher-1")


@researcher.handler("research")
def research(task: agentfn.TaskContext) -> dict:
    return {"notes": f"{task.payload['topic']} keep every transition in one FCALL"}


def main() -> None:
    with agentfn.local_redis() as connection:
        agentfn.deploy(connection)
        client = agentfn.Client(connection)
        threads = [agent.bind(client).start() for agent in (researcher, analyst)]
        workflow_id = client.create_workflow(
            [{"id": "analyze", "capability": "analyze", "input": {"topic": "Redis Functions"}}],
            context={"audience": "operators"},
        )
        info = client.wait_workflow(workflow_id, timeout=30)
        print(info.state.value, info.results["analyze"])
        for agent, thread in zip((researcher, analyst), threads, strict=True):
            agent.stop()
            thread.join()


if __name__ == "__main__":
    main()
