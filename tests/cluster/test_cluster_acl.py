"""The ACL roles of `agentfn acl` on a Redis Cluster: `--apply` creates the users on every node,
and each role connects (redis-py's RedisCluster: COMMAND, CLUSTER SLOTS), runs its part of the
lifecycle, and follows its namespace's slot to another primary (MOVED: CLUSTER SLOTS again)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

import agentfn
from agentfn.cli import acl
from agentfn.cli.main import main
from agentfn.client.status import read_status

from .agents import counting_echo
from .nodes import LocalCluster, lowest_slot, namespace_in_slot, reshard_one_slot
from .waiting import wait_all_completed


@pytest.fixture
def passwords(
    cluster: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> Iterator[tuple[str, dict[str, str]]]:
    """A namespace on the first primary's lowest slot and its four users, made by `agentfn acl
    --apply` through one node; deleted from every node afterwards."""
    namespace = namespace_in_slot(lowest_slot(cluster.primaries()[0]), prefix="acl")
    url = cluster.nodes[0].url
    assert main(["acl", "--apply", "--json", "--url", url, "--namespace", namespace]) == 0
    created: dict[str, str] = json.loads(capsys.readouterr().out)["passwords"]
    yield namespace, created
    for node in cluster.live_nodes():
        with node.client() as server:
            server.acl_deluser(*created)


def connect_as(cluster: LocalCluster, namespace: str, role: str, passwords: dict[str, str]) -> str:
    user = acl.user_name(namespace, role)
    return f"redis://{user}:{passwords[user]}@{cluster.nodes[1].address}"


def test_apply_creates_the_users_on_every_node(
    cluster: LocalCluster, passwords: tuple[str, dict[str, str]]
) -> None:
    namespace, created = passwords
    assert sorted(created) == sorted(acl.user_name(namespace, role) for role in acl.ROLES)
    for node in cluster.live_nodes():
        with node.client() as server:
            assert set(created) <= set(server.acl_users()), node.address
            rules = server.acl_getuser(acl.user_name(namespace, "observer"))["commands"]
            assert "+cluster|slots" in rules and "+command" in rules, rules


def test_every_role_works_on_a_cluster_and_follows_a_moved_slot(
    cluster: LocalCluster, passwords: tuple[str, dict[str, str]]
) -> None:
    namespace, created = passwords
    admin = agentfn.connect(connect_as(cluster, namespace, "admin", created), decode_responses=True)
    report = agentfn.deploy(admin, namespace)  # every primary: FUNCTION LOAD, CLUSTER NODES
    assert report.version == agentfn.__version__
    orchestrator_url = connect_as(cluster, namespace, "orchestrator", created)
    orchestrator = agentfn.Client(
        agentfn.connect(orchestrator_url, decode_responses=True), namespace
    )
    agent_connection = agentfn.connect(
        connect_as(cluster, namespace, "agent", created), decode_responses=True
    )
    agent, runs = counting_echo(agentfn.Client(agent_connection, namespace), "acl-echo")
    observer_url = connect_as(cluster, namespace, "observer", created)
    observer = agentfn.connect(observer_url, decode_responses=True)
    thread = agent.start()
    try:
        first = orchestrator.submit("echo", {"n": 1})
        wait_all_completed(orchestrator, [first], timeout=30)
        before = read_status(observer, namespace)
        assert [row.id for row in before.agents] == ["acl-echo"]

        # The namespace's slot moves (as the default user): every role's next call meets MOVED
        # and refreshes its slot map as itself.
        source, target = cluster.primaries()[0], cluster.primaries()[1]
        reshard_one_slot(cluster, source, target)
        assert cluster.owner(orchestrator.root).port == target.port
        second = orchestrator.submit("echo", {"n": 2})
        wait_all_completed(orchestrator, [second], timeout=60)
        assert orchestrator.get_task(second).result == {"n": 2}
        after = read_status(observer, namespace)  # read on the new owner
        assert after.library is not None and after.events > before.events

        async def submit_async() -> str:
            connection = await agentfn.connect_async(orchestrator_url, decode_responses=True)
            try:
                return await agentfn.AsyncClient(connection, namespace).submit("echo", {"n": 3})
            finally:
                await connection.aclose()

        third = asyncio.run(submit_async())
        wait_all_completed(orchestrator, [third], timeout=30)
    finally:
        agent.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert dict(runs) == {first: 1, second: 1, third: 1}
