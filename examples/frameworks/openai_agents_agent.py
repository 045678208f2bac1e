"""An OpenAI Agents SDK agent as an agentfn handler: its function tools use agentfn (a subtask for
another agent, the workflow's shared context). The model is the SDK's own offline ScriptedModel
(agents.testing): no network, no key; give the Agent a real model and nothing else changes.

    pip install 'agentfn[openai-agents]'
    python examples/frameworks/openai_agents_agent.py
"""

from __future__ import annotations

import json

from agents import Agent, RunContextWrapper, Runner, function_tool, set_tracing_disabled
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call

import agentfn

set_tracing_disabled(True)  # nothing leaves the process


@function_tool
def ask_researcher(ctx: RunContextWrapper[agentfn.TaskContext], topic: str) -> str:
    """Ask the research agents about a topic (a one-step workflow; waits for its result, JSON)."""
    client = ctx.context.client
    workflow_id = client.create_workflow(
        [{"id": "research", "capability": "research", "input": {"topic": topic}}]
    )
    return json.dumps(client.wait_workflow(workflow_id, timeout=30).results["research"])


@function_tool
def read_context(ctx: RunContextWrapper[agentfn.TaskContext]) -> str:
    """The shared context document of the workflow this step belongs to (JSON)."""
    task = ctx.context
    return json.dumps(task.client.ctx_get(task.workflow).document if task.workflow else {})


def answer_from_tools(call: ModelCall) -> list:
    """The scripted model's second turn: answer from the tools' outputs in its input."""
    outputs = [
        json.loads(item["output"])
        for item in call.input
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]
    notes = next(output["notes"] for output in outputs if "notes" in output)
    audience = next(output["audience"] for output in outputs if "audience" in output)
    return [assistant_message(f"For {audience}: {notes}.")]


def scripted_model(topic: str) -> ScriptedModel:
    """Stands in for an LLM: call both tools, then answer from what they returned."""
    return ScriptedModel(
        [
            [
                function_call("ask_researcher", {"topic": topic}, call_id="call-1"),
                function_call("read_context", {}, call_id="call-2"),
            ],
            ModelStep.respond(answer_from_tools),
        ]
    )


writer = agentfn.Agent(None, "writer-1")


@writer.handler("write")
async def write(task: agentfn.TaskContext) -> dict:
    llm = Agent(
        name="writer",
        instructions="Write for the workflow's audience.",
        tools=[ask_researcher, read_context],
        model=scripted_model(task.payload["topic"]),
    )
    run = await Runner.run(llm, task.payload["topic"], context=task)
    return {"answer": run.final_output}


researcher = agentfn.Agent(None, "researcher-1")


@researcher.handler("research")
def research(task: agentfn.TaskContext) -> dict:
    return {"notes": f"{task.payload['topic']} wake idle agents with XREAD BLOCK"}


def main() -> None:
    with agentfn.local_redis() as connection:
        agentfn.deploy(connection)
        client = agentfn.Client(connection)
        threads = [agent.bind(client).start() for agent in (researcher, writer)]
        workflow_id = client.create_workflow(
            [{"id": "write", "capability": "write", "input": {"topic": "Streams"}}],
            context={"audience": "developers"},
        )
        info = client.wait_workflow(workflow_id, timeout=30)
        print(info.state.value, info.results["write"])
        for agent, thread in zip((researcher, writer), threads, strict=True):
            agent.stop()
            thread.join()


if __name__ == "__main__":
    main()
