"""agentfn.connect on a cluster, and every call routed by its namespace's slot."""

from __future__ import annotations

import asyncio

import redis
import redis.cluster

import agentfn

from .nodes import LocalCluster


def test_connect_detects_a_cluster_from_any_node(cluster: LocalCluster) -> None:
    for node in (cluster.replicas()[0], cluster.primaries()[-1]):
        connection = agentfn.connect(node.url, decode_responses=True)
        assert isinstance(connection, redis.cluster.RedisCluster)
        connection.close()


def test_client_calls_go_to_each_namespace_owner(
    cluster: LocalCluster, rc: redis.cluster.RedisCluster, spread: list[str]
) -> None:
    agentfn.deploy(rc, spread[0])
    for namespace, primary in zip(spread, cluster.primaries(), strict=True):
        client = agentfn.Client(rc, namespace)
        agentfn.migrate(rc, namespace)
        task_id = client.submit("echo", {"n": 1})
        assert client.redis.connection_pool.connection_kwargs["port"] == primary.port
        with primary.client() as owner:
            assert owner.exists(f"agentfn:{{{namespace}}}:task:{task_id}")


def test_batch_on_a_cluster(rc: redis.cluster.RedisCluster, spread: list[str]) -> None:
    agentfn.deploy(rc, spread[1])
    client = agentfn.Client(rc, spread[1])
    batch = agentfn.Batch(client)
    for n in range(3):
        batch.submit("echo", {"n": n})
    ids = batch.execute()
    assert [client.get_task(task_id).state for task_id in ids] == ["queued"] * 3


def test_async_client_on_a_cluster(cluster: LocalCluster, spread: list[str]) -> None:
    async def scenario() -> str:
        connection = await agentfn.connect_async(cluster.nodes[0].url, decode_responses=True)
        client = agentfn.AsyncClient(connection, spread[2])
        await client.agent_register("a1", ["echo"])
        await client.submit("echo", {"n": 1})
        claim = await client.claim("a1", 1)
        await client.complete(claim.tasks[0].id, claim.tasks[0].token, {"ok": True})
        state = (await client.get_task(claim.tasks[0].id)).state
        await connection.aclose()
        return state

    sync = redis.cluster.RedisCluster.from_url(cluster.nodes[0].url)
    agentfn.deploy(sync, spread[2])
    sync.close()
    assert asyncio.run(scenario()) == "completed"


def test_moved_error_is_one_line_naming_it(cluster: LocalCluster, spread: list[str]) -> None:
    from agentfn.client.routing import describe

    wrong = cluster.primaries()[1].client()
    try:
        wrong.get(f"agentfn:{{{spread[0]}}}")
    except redis.ResponseError as error:
        text = describe(error)
    assert text.startswith("MOVED slot ") and "127.0.0.1:" in text


def test_a_cluster_error_is_a_passing_one_for_the_agent(
    cluster: LocalCluster, spread: list[str]
) -> None:
    """The runtime's recovery retries MOVED (after finding the owner again) with backoff and
    says it in words: it never counts towards the errors that end an agent."""
    from agentfn.agent.recovery import describe, recoverable, reroutes

    wrong = cluster.primaries()[1]
    with wrong.client() as node:
        try:
            node.get(f"agentfn:{{{spread[0]}}}")
        except redis.ResponseError as error:
            moved = error
        assert recoverable(moved) and reroutes(moved)
        assert describe(moved, node).startswith("MOVED slot ")
        assert describe(moved, node).endswith(f"(asked redis://{wrong.address})")


def test_async_messages_and_workflow_wait_on_a_cluster(
    cluster: LocalCluster, spread: list[str]
) -> None:
    namespace = spread[1]
    sync_connection = agentfn.connect(cluster.nodes[0].url, decode_responses=True)
    agentfn.deploy(sync_connection, namespace)
    sync = agentfn.Client(sync_connection, namespace)
    sync.agent_register("worker", ["echo"])

    async def scenario() -> tuple[list[str], str]:
        connection = await agentfn.connect_async(cluster.replicas()[2].url, decode_responses=True)
        client = agentfn.AsyncClient(connection, namespace)
        await client.agent_register("inbox-owner", [])
        sync.send("worker", "inbox-owner", "note", {"hello": 1})
        received = await client.receive("inbox-owner", timeout=5)
        workflow_id = await client.create_workflow([{"id": "only", "capability": "echo"}])
        claim = sync.claim("worker", 1)
        sync.complete(claim.tasks[0].id, claim.tasks[0].token, {"ok": True})
        info = await client.wait_workflow(workflow_id, timeout=10)
        await connection.aclose()
        return [message.type for message in received], info.state

    assert asyncio.run(scenario()) == (["note"], "completed")


def test_an_asyncio_agent_on_an_async_cluster_client(
    cluster: LocalCluster, spread: list[str]
) -> None:
    """The agent's machinery runs on a synchronous twin of the asyncio cluster (sync_twin): a
    RedisCluster routing to the namespace's owner, with the client's durability option."""
    namespace = spread[2]
    sync_connection = agentfn.connect(cluster.nodes[0].url, decode_responses=True)
    agentfn.deploy(sync_connection, namespace)
    sync_connection.close()

    async def scenario() -> tuple[str, object, int]:
        connection = await agentfn.connect_async(cluster.nodes[1].url, decode_responses=True)
        client = agentfn.AsyncClient(connection, namespace, wait_replicas=1)
        agent = agentfn.Agent(None, "async-echo")

        @agent.handler("echo")
        async def echo(task: agentfn.TaskContext) -> object:
            return (await task.client.get_task(task.id)).payload

        serving = asyncio.create_task(agent.bind(client).run_async(handle_signals=False))
        try:
            workflow_id = await client.create_workflow(
                [{"id": "only", "capability": "echo", "input": {"n": 7}}]
            )
            info = await client.wait_workflow(workflow_id, timeout=20)
            return info.state.value, info.results["only"], agent_twin_replicas(agent)
        finally:
            agent.stop()
            await serving
            await connection.aclose()

    state, result, replicas = asyncio.run(scenario())
    assert (state, result, replicas) == ("completed", {"n": 7}, 1)


def agent_twin_replicas(agent: agentfn.Agent) -> int:
    from agentfn.client.client import sync_twin

    twin = sync_twin(agent.client)  # type: ignore[arg-type]
    assert isinstance(twin.connection, redis.cluster.RedisCluster)
    durability = twin.route.durability
    twin.connection.close()
    return durability.replicas if durability else 0
