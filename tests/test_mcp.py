"""`agentfn mcp` driven by the mcp SDK's own client, over stdio (a subprocess) and streamable
HTTP, with a real agent process (`agentfn worker tests.bridge_agents:team`) serving the work."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from .agent_fixtures import REPO  # noqa: E402
from .bridge_agents import announced_server, serving_team  # noqa: E402
from .test_examples import BLOCKS  # noqa: E402

TOOLS = {
    "find_agents",
    "submit_task",
    "get_task",
    "wait_task",
    "cancel_task",
    "create_workflow",
    "get_workflow",
    "wait_workflow",
    "cancel_workflow",
    "answer_input",
    "read_context",
    "write_context",
    "send_message",
    "read_inbox",
}


@pytest.fixture
def team(client, redis_url) -> Iterator[subprocess.Popen[str]]:
    """The test team as its own OS process, registered before the test starts."""
    with serving_team(client, redis_url) as worker:
        yield worker


async def call(session: ClientSession, tool: str, **arguments: Any) -> Any:
    """Call a tool; its structured result (the tool error text raises AssertionError)."""
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def refused(session: ClientSession, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail; the error text after the SDK's "Error executing tool <name>: "."""
    result = await session.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    prefix, _, error = result.content[0].text.partition(f"{tool}: ")
    return error or prefix


async def run_workflow_through_tools(session: ClientSession) -> None:
    listed = await session.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) >= TOOLS
    steps_schema = tools["create_workflow"].input_schema
    assert steps_schema["required"] == ["steps"]
    assert steps_schema["$defs"]["StepSpec"]["required"] == ["id", "capability"]
    assert tools["submit_task"].input_schema["properties"]["priority"]["enum"] == [
        "high",
        "normal",
        "low",
    ]

    agents = await call(session, "find_agents", capability="research")
    assert [agent["id"] for agent in agents["result"]] == ["team-1"]

    created = await call(
        session,
        "create_workflow",
        workflow_id="article",
        context={"audience": "ops"},
        steps=[
            {"id": "streams", "capability": "research", "input": {"topic": "streams"}},
            {"id": "pubsub", "capability": "research", "input": {"topic": "pubsub"}},
            {"id": "write", "capability": "write", "depends_on": ["streams", "pubsub"]},
            {
                "id": "review",
                "capability": "review",
                "input": "the article",
                "depends_on": ["write"],
            },
        ],
    )
    assert created["id"] == "article" and created["state"] == "running"
    waiting = await call(session, "wait_workflow", workflow_id="article", timeout_s=20)
    assert waiting["input_required"] == ["review"] and not waiting["done"]
    review = next(step for step in waiting["steps"] if step["id"] == "review")
    assert review["prompt"] == {"question": "publish the article?"}
    assert waiting["results"]["write"] == {
        "article": "notes on pubsub / notes on streams",
        "audience": "ops",
    }

    await call(session, "answer_input", workflow_id="article", step_id="review", value="yes")
    done = await call(session, "wait_workflow", workflow_id="article", timeout_s=20)
    assert (done["state"], done["done"]) == ("completed", True)
    assert done["results"]["review"] == {"reviewed": "the article", "answer": "yes"}

    context = await call(session, "read_context", workflow_id="article")
    assert context == {"document": {"audience": "ops"}, "version": 0}
    written = await call(
        session,
        "write_context",
        workflow_id="article",
        document={"status": "published"},
        expect_version=0,
    )
    assert written == {"document": {"audience": "ops", "status": "published"}, "version": 1}

    # Coded errors: the library's refusals, as tool errors that start with their code.
    assert (
        await refused(
            session, "write_context", workflow_id="article", document={"x": 1}, expect_version=0
        )
    ).startswith("CONFLICT")
    assert (await refused(session, "get_task", task_id="t-ghost")).startswith("NOTFOUND")
    assert (
        await refused(session, "answer_input", workflow_id="article", step_id="review", value=1)
    ).startswith("STATE")
    assert (
        await refused(
            session,
            "create_workflow",
            steps=[
                {"id": "a", "capability": "research", "depends_on": ["b"]},
                {"id": "b", "capability": "research", "depends_on": ["a"]},
            ],
        )
    ).startswith("CYCLE")
    schema_error = await refused(session, "submit_task", capability="research", priority="urgent")
    assert "priority" in schema_error  # refused by the input schema before any call


async def message_round_trip(session: ClientSession) -> None:
    sent = await call(session, "send_message", to="team-1", type="ping", content={"n": 1})
    inbox = await call(session, "read_inbox", timeout_s=20)
    [reply] = inbox["messages"]
    assert (reply["sender"], reply["content"], reply["reply_to"]) == (
        "team-1",
        {"pong": {"n": 1}},
        sent["id"],
    )
    assert (await call(session, "read_inbox", ack=[reply["id"]]))["messages"] == []


def registered_ids(client) -> set[str]:
    return {agent.id for agent in client.agent_find()}


def test_stdio_tools_run_a_workflow_with_input_and_messages(client, team, redis_url):
    parameters = StdioServerParameters(
        command=sys.executable,
        cwd=str(REPO),
        args=[
            "-m",
            "agentfn",
            "mcp",
            "--url",
            redis_url,
            "--namespace",
            "default",
            "--agent-id",
            "mcp-test",
        ],
    )

    async def scenario() -> None:
        async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            await run_workflow_through_tools(session)
            await message_round_trip(session)
            fleet = await session.read_resource("agentfn://fleet")
            document = json.loads(fleet.contents[0].text)
            assert document["capabilities"]["research"] == ["team-1"]
            assert "mcp-test" in registered_ids(client)

    asyncio.run(asyncio.wait_for(scenario(), 60))
    # The client closed stdin: the server deregistered before exiting (no stale live agent).
    assert "mcp-test" not in registered_ids(client)


def test_streamable_http_submit_wait_cancel_and_resource(client, team, redis_url):
    serving = announced_server("mcp", "--url", redis_url, "--http", "0", "--agent-id", "mcp-http")
    with serving as url:

        async def scenario() -> None:
            async with (
                streamable_http_client(url) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                assert {tool.name for tool in (await session.list_tools()).tools} >= TOOLS
                task = await call(
                    session,
                    "submit_task",
                    capability="research",
                    payload={"topic": "leases"},
                    priority="high",
                    idempotency_key="leases-once",
                )
                again = await call(
                    session,
                    "submit_task",
                    capability="research",
                    payload={"topic": "leases"},
                    idempotency_key="leases-once",
                )
                assert again["id"] == task["id"]
                finished = await call(session, "wait_task", task_id=task["id"], timeout_s=20)
                assert (finished["state"], finished["done"], finished["agent"]) == (
                    "completed",
                    True,
                    "team-1",
                )
                assert finished["result"] == {"topic": "leases", "notes": "notes on leases"}

                nobody = await call(session, "submit_task", capability="nobody-serves-it")
                pending = await call(session, "wait_task", task_id=nobody["id"], timeout_s=0.2)
                assert (pending["state"], pending["done"]) == (
                    "queued",
                    False,
                )  # bounded: back after 0.2 s
                canceled = await call(session, "cancel_task", task_id=nobody["id"])
                assert (canceled["state"], canceled["done"]) == ("canceled", True)

                held = await call(
                    session, "create_workflow", steps=[{"id": "h", "capability": "hold"}]
                )
                stopped = await call(session, "cancel_workflow", workflow_id=held["id"])
                assert stopped["state"] == "canceled"
                resource = await session.read_resource(f"agentfn://workflows/{held['id']}")
                assert json.loads(resource.contents[0].text)["state"] == "canceled"
                assert (
                    client.get_task(stopped["steps"][0]["task"]).state == "canceled"
                )  # in Redis too

        asyncio.run(asyncio.wait_for(scenario(), 60))
        assert "mcp-http" in registered_ids(client)
    assert "mcp-http" not in registered_ids(client)  # SIGTERM: deregistered on the way out


def test_the_readme_client_configuration_starts_a_working_server(client, redis_url):
    """The README's mcpServers snippet, as a client would run it (the URL made the test server's)."""
    [config] = [
        json.loads(text) for language, text in BLOCKS if language == "json" and "mcpServers" in text
    ]
    server = config["mcpServers"]["agentfn"]
    assert server["command"] == "agentfn"
    arguments = [
        redis_url if value == "redis://localhost:6379" else value for value in server["args"]
    ]
    parameters = StdioServerParameters(
        command=str(Path(sys.executable).parent / "agentfn"), args=arguments
    )

    async def scenario() -> list[str]:
        async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return [tool.name for tool in (await session.list_tools()).tools]

    assert set(asyncio.run(asyncio.wait_for(scenario(), 30))) >= TOOLS
