"""An asyncio agent on an AsyncClient: ``agent.bind(AsyncClient(redis.asyncio.Redis(...)))`` and
``await agent.run_async()``; its handlers get the AsyncClient and await it (the README example)."""

from __future__ import annotations

import asyncio

import redis.asyncio

import agentfn


def test_an_asyncio_agent_on_an_async_client_runs_a_workflow(redis_proc, deployed):
    async def main() -> agentfn.WorkflowInfo:
        connection = redis.asyncio.Redis(
            host=redis_proc.host, port=redis_proc.port, decode_responses=True
        )
        client = agentfn.AsyncClient(connection)
        agent = agentfn.Agent(None, "async-writer", concurrency=2)

        @agent.handler("draft")
        async def draft(task: agentfn.TaskContext) -> dict:
            # the workflow's shared context, read and merged from the handler
            await task.client.ctx_set(
                task.workflow, {"drafted": task.payload["topic"]}, mode="merge"
            )
            return {"text": f"about {task.payload['topic']}"}

        @agent.handler("review")
        async def review(task: agentfn.TaskContext) -> dict:
            context = await task.client.ctx_get(task.workflow)
            return {"ok": True, "saw": context.document["drafted"], "draft": task.inputs["draft"]}

        serving = asyncio.create_task(agent.bind(client).run_async(handle_signals=False))
        try:
            workflow_id = await client.create_workflow(
                [
                    {"id": "draft", "capability": "draft", "input": {"topic": "streams"}},
                    {"id": "review", "capability": "review", "depends_on": ["draft"]},
                ]
            )
            return await client.wait_workflow(workflow_id, timeout=10)
        finally:
            agent.stop()
            await serving
            await connection.aclose()

    info = asyncio.run(main())
    assert info.state.value == "completed"
    assert info.results["review"] == {
        "ok": True,
        "saw": "streams",
        "draft": {"text": "about streams"},
    }
