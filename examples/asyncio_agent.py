"""asyncio: an Agent bound to an AsyncClient, served with `await agent.run_async()`; its handlers
read and write the workflow's shared context.

python examples/asyncio_agent.py   # a temporary redis-server, or the one $REDIS_URL names
"""

import asyncio
import os

import redis
import redis.asyncio

import agentfn

writer = agentfn.Agent(None, "writer-async", concurrency=4)


@writer.handler("draft")
async def draft(task: agentfn.TaskContext) -> dict:
    # task.client is the AsyncClient the agent is bound to; task.workflow names the workflow
    await task.client.ctx_set(task.workflow, {"drafted": task.payload["topic"]}, mode="merge")
    return {"text": f"notes on {task.payload['topic']}"}


@writer.handler("review")
async def review(task: agentfn.TaskContext) -> dict:
    context = await task.client.ctx_get(task.workflow)  # the shared document and its version
    return {"for": context.document["audience"], "draft": task.inputs["draft"]["text"]}


async def main(url: str) -> None:
    connection = redis.asyncio.Redis.from_url(url, decode_responses=True)
    client = agentfn.AsyncClient(connection)  # namespace: $AGENTFN_NAMESPACE, else "default"
    serving = asyncio.create_task(writer.bind(client).run_async())
    workflow_id = await client.create_workflow(
        [
            {"id": "draft", "capability": "draft", "input": {"topic": "Streams"}},
            {"id": "review", "capability": "review", "input": {}, "depends_on": ["draft"]},
        ],
        context={"audience": "operators"},
    )
    info = await client.wait_workflow(workflow_id, timeout=10)
    print(info.state.value, info.results["review"])
    print("context", (await client.ctx_get(workflow_id)).document)
    writer.stop()  # stop claiming, finish what runs, deregister
    await serving
    await connection.aclose()


def run(url: str) -> None:
    with redis.Redis.from_url(url) as connection:
        agentfn.deploy(connection)  # load the library if it changed, migrate the namespace
    asyncio.run(main(url))


if __name__ == "__main__":
    if "REDIS_URL" in os.environ:
        run(os.environ["REDIS_URL"])
    else:
        with agentfn.EmbeddedRedis() as server:
            run(server.url)
