"""The durability option (WAIT): a primary killed with SIGKILL loses no acknowledged write once
its replica is promoted (automatic failover: the fixture's cluster-node-timeout is 1 s), and the
agent serving the namespace goes on."""

from __future__ import annotations

import pytest

import agentfn

from .agents import counting_echo
from .nodes import LocalCluster, namespace_in_slot, namespace_on
from .waiting import wait_all_completed


def test_acknowledged_submits_and_completions_survive_sigkill(cluster: LocalCluster) -> None:
    # The victim serves slot 0: redis-py's default node after a refresh, the node its own FCALL
    # routing asks COMMAND GETKEYS of. Namespaces on other primaries must not notice its death.
    victim = cluster.owner(f"agentfn:{{{namespace_in_slot(0)}}}")
    bystander_node = next(node for node in cluster.primaries() if node.port != victim.port)
    namespace = namespace_on(cluster, victim, prefix="victim")
    connection = agentfn.connect(bystander_node.url, decode_responses=True)
    agentfn.deploy(connection, namespace)
    bystander = agentfn.Client(connection, namespace_on(cluster, bystander_node, prefix="by"))
    agentfn.deploy(connection, bystander.namespace)
    client = agentfn.Client(connection, namespace, wait_replicas=1, wait_timeout_ms=2000)
    agent, runs = counting_echo(client, "survivor", concurrency=4, lease_ms=3000)

    thread = agent.start()
    try:
        before = [client.submit("echo", {"n": n}) for n in range(40)]
        wait_all_completed(client, before, timeout=20)
        last = [client.submit("echo", {"n": n}) for n in range(40, 60)]
        victim.kill()  # right after acknowledged submits and completions
        assert bystander.get_task(bystander.submit("echo", {})).state == "queued"
        cluster.wait_failover(victim)  # its replica took over
        new_owner = cluster.owner(client.root)
        assert new_owner.port != victim.port
        with new_owner.client() as owner:
            for task_id in before + last:
                assert owner.exists(f"{client.root}:task:{task_id}"), task_id
        victim.start()  # it rejoins as a replica of the promoted node
        cluster.wait_ok()
        cluster.wait_replicas(new_owner, 1)
        after = [client.submit("echo", {"n": n}) for n in range(60, 70)]
        wait_all_completed(client, before + last + after, timeout=40)
        assert all(runs[task_id] == 1 for task_id in before), "a completed task ran again"
    finally:
        agent.stop(now=True)
        thread.join(10)
        if not victim.alive:
            victim.start()
            cluster.wait_ok()
    assert not thread.is_alive()


def test_not_replicated_in_time_is_a_coded_error(cluster: LocalCluster, spread: list[str]) -> None:
    connection = agentfn.connect(cluster.nodes[0].url, decode_responses=True)
    agentfn.deploy(connection, spread[1])
    client = agentfn.Client(connection, spread[1], wait_replicas=2, wait_timeout_ms=50)
    with pytest.raises(agentfn.NotReplicated, match="1 of 2 replicas") as info:
        client.submit("echo", {})
    assert str(info.value).startswith("NOTREPLICATED ")
