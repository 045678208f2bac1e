"""Deploy on every primary, verified on every node; the worker and the CLI from any node."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis.cluster

import agentfn

from ..agent_fixtures import REPO, spawn_worker, wait_for_task
from .nodes import LocalCluster


def agentfn_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentfn", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_deploy_loads_every_primary_checks_every_node_and_repairs(
    cluster: LocalCluster, spread: list[str]
) -> None:
    url = cluster.replicas()[0].url
    first = agentfn_cli("deploy", "--url", url, "--namespace", spread[0])
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert sum("primary: loaded" in line for line in lines) == 3, first.stdout
    assert sum("replica: up to date" in line for line in lines) == 3, first.stdout

    assert agentfn_cli("deploy", "--check", "--url", url).returncode == 0
    broken = cluster.primaries()[1]
    with broken.client() as node:
        node.function_delete("agentfn")
        node.execute_command("WAIT", 1, 5000)
    check = agentfn_cli("deploy", "--check", "--url", url)
    assert check.returncode == 1
    assert f"{broken.address} (missing)" in check.stderr and check.stderr.count("\n") == 1

    repair = agentfn_cli("deploy", "--url", url, "--namespace", spread[0])
    assert repair.returncode == 0, repair.stderr
    assert f"{broken.address} primary: loaded" in repair.stdout
    assert agentfn_cli("deploy", "--check", "--url", url).returncode == 0


def test_deploy_refuses_a_downgrade_before_loading_anywhere(
    cluster: LocalCluster, rc: redis.cluster.RedisCluster, spread: list[str]
) -> None:
    newer = agentfn.render_library(version="99.0.0")
    newer_node = cluster.primaries()[2]
    with newer_node.client() as node:
        node.function_load(newer.source)
    with pytest.raises(agentfn.DowngradeRefused, match=newer_node.address):
        agentfn.deploy(rc, spread[0])
    for primary in cluster.primaries()[:2]:
        with primary.client() as node:
            assert node.function_list() == []


def test_missing_library_after_the_first_check_names_the_node(
    cluster: LocalCluster, rc: redis.cluster.RedisCluster, spread: list[str]
) -> None:
    agentfn.deploy(rc, spread[1])
    client = agentfn.Client(rc, spread[1])
    client.submit("echo", {})
    owner = cluster.primaries()[1]
    with owner.client() as node:
        node.function_delete("agentfn")
    with pytest.raises(agentfn.LibraryNotReady, match=owner.address):
        client.submit("echo", {})


def test_worker_on_any_node_serves_its_namespace(
    cluster: LocalCluster, rc: redis.cluster.RedisCluster, spread: list[str]
) -> None:
    agentfn.deploy(rc, spread[0])
    client = agentfn.Client(rc, spread[0])
    not_owner = cluster.primaries()[2].url
    worker = spawn_worker(
        not_owner, "tests.cluster.agents:echo", "--namespace", spread[0], "--agent-id", "w1"
    )
    try:
        ids = [client.submit("echo", {"n": n}) for n in range(5)]
        for task_id in ids:
            assert wait_for_task(client, task_id, {"completed"}, timeout=20).state == "completed"
    finally:
        worker.terminate()
        worker.wait(10)


def test_demo_runs_on_a_cluster_from_a_replica_url(cluster: LocalCluster) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentfn", "demo", "--url", cluster.replicas()[1].url]
        + ["--namespace", "demo-cluster"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "2 of 2 workflows completed" in done.stdout
