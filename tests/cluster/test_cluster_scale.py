"""A primary added with `redis-cli --cluster add-node` gets a namespace (`agentfn cluster move`)
and serves it. Runs last on the shared cluster (it leaves a fourth primary behind)."""

from __future__ import annotations

import subprocess

import agentfn

from .nodes import LocalCluster, namespace_on
from .test_cluster_deploy import agentfn_cli
from .waiting import wait_all_completed


def test_move_refuses_a_target_without_the_library(cluster: LocalCluster) -> None:
    source, target = cluster.primaries()[0], cluster.primaries()[1]
    namespace = namespace_on(cluster, source, prefix="refuse")
    assert agentfn_cli("deploy", "--url", source.url, "--namespace", namespace).returncode == 0
    with target.client() as bare:
        bare.function_delete("agentfn")
    refused = agentfn_cli(
        "cluster", "move", "--namespace", namespace, "--to", target.address, "--url", source.url
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith("agentfn: move refused: ") and "missing" in refused.stderr
    assert cluster.owner(f"agentfn:{{{namespace}}}").port == source.port


def test_a_new_primary_gets_a_namespace_and_works(cluster: LocalCluster) -> None:
    seed = cluster.primaries()[0]
    namespace = namespace_on(cluster, seed, prefix="grow")
    assert agentfn_cli("deploy", "--url", seed.url, "--namespace", namespace).returncode == 0
    client = agentfn.Client(agentfn.connect(seed.url, decode_responses=True), namespace)
    early = [client.submit("echo", {"n": n}) for n in range(20)]

    new = cluster.add_process()
    subprocess.run(
        ["redis-cli", "--cluster", "add-node", new.address, seed.address],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    cluster.wait_ok()  # add-node copied the functions to the new, empty primary
    checked = agentfn_cli("deploy", "--check", "--url", seed.url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{new.address} primary: up to date" in checked.stdout

    moved = agentfn_cli(
        "cluster", "move", "--namespace", namespace, "--to", new.address, "--url", seed.url
    )
    assert moved.returncode == 0, moved.stderr
    assert f"to {new.address}" in moved.stdout
    cluster.wait_ok()
    assert cluster.owner(client.root).port == new.port

    agent = agentfn.Agent(client, "grower", concurrency=4)
    agent.handler("echo")(lambda task: task.payload)
    thread = agent.start()
    try:
        late = [client.submit("echo", {"n": n}) for n in range(20, 40)]
        wait_all_completed(client, early + late, timeout=30)
    finally:
        agent.stop(now=True)
        thread.join(10)
    with new.client() as owner:
        assert owner.exists(f"{client.root}:task:{late[0]}")
