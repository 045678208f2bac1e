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
