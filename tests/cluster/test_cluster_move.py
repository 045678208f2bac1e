"""Moving a busy namespace's slot with the standard tool (`redis-cli --cluster reshard`).

The root key ``agentfn:{ns}`` never exists, so from the moment the slot is MIGRATING the old
owner answers every FCALL with ASK (its declared key counts as moved); agentfn's client never
follows ASK (the function would run on the new owner against a half-moved namespace): it waits,
bounded, until SETSLOT NODE makes the old owner answer MOVED. No function runs during the move.
"""

from __future__ import annotations

import subprocess
import threading

import pytest

import agentfn

from .agents import counting_echo
from .nodes import LocalCluster, Node, lowest_slot, namespace_in_slot, reshard_one_slot
from .waiting import wait_all_completed


def test_reshard_a_busy_namespace_every_acknowledged_submit_completes_once(
    cluster: LocalCluster,
) -> None:
    source, target = cluster.primaries()[0], cluster.primaries()[1]
    slot = lowest_slot(source)
    namespace = namespace_in_slot(slot)
    connection = agentfn.connect(cluster.replicas()[0].url, decode_responses=True)
    agentfn.deploy(connection, namespace)
    client = agentfn.Client(connection, namespace)
    agent, runs = counting_echo(client, "mover", concurrency=4)

    acknowledged: list[str] = []
    stop = threading.Event()
    failures: list[BaseException] = []
    progress = threading.Condition()

    def submitter() -> None:
        submit_client = agentfn.Client(connection, namespace)
        n = 0
        while not stop.is_set():
            try:
                task_id = submit_client.submit("echo", {"n": n})
            except agentfn.NamespaceMoving:
                continue  # not acknowledged: the caller may submit again
            except BaseException as error:  # noqa: BLE001 - reported by the test
                with progress:
                    failures.append(error)
                    progress.notify_all()
                return
            with progress:
                acknowledged.append(task_id)
                progress.notify_all()
            n += 1

    def wait_acknowledged(count: int) -> None:
        with progress:
            assert progress.wait_for(lambda: len(acknowledged) >= count or failures, timeout=60)

    thread = agent.start()
    submitters = [threading.Thread(target=submitter) for _ in range(2)]
    for worker in submitters:
        worker.start()
    try:
        wait_acknowledged(400)  # a busy, bigger namespace to move
        output = reshard_one_slot(cluster, source, target)
        assert f"Moving slot {slot} from" in output
        wait_acknowledged(len(acknowledged) + 20)  # submitters go on after the move
    finally:
        stop.set()
        for worker in submitters:
            worker.join(30)
    try:
        assert not failures, failures
        wait_all_completed(client, acknowledged, timeout=60)
        assert set(runs) == set(acknowledged)
        assert all(count == 1 for count in runs.values()), "a task ran twice"
        assert cluster.owner(client.root).port == target.port
        with source.client() as old:
            assert old.cluster("countkeysinslot", slot) == 0
        with target.client() as new:
            assert new.cluster("countkeysinslot", slot) > 0
    finally:
        agent.stop(now=True)
        thread.join(10)
    assert not thread.is_alive()


def test_slot_moved_to_a_node_without_the_library_is_named_then_repaired(
    cluster: LocalCluster,
) -> None:
    source, target = cluster.primaries()[2], cluster.primaries()[0]
    namespace = namespace_in_slot(lowest_slot(source), prefix="bare")
    connection = agentfn.connect(source.url, decode_responses=True)
    agentfn.deploy(connection, namespace)
    client = agentfn.Client(connection, namespace)
    task_id = client.submit("echo", {})
    with target.client() as bare:
        bare.function_delete("agentfn")
    reshard_one_slot(cluster, source, target)
    with pytest.raises(agentfn.LibraryNotReady, match=f"not deployed on redis://{target.address}"):
        client.get_task(task_id)
    agentfn.deploy(connection, namespace)
    assert client.get_task(task_id).state == "queued"


def _migrate_keys(source: Node, target: Node, names: list[str], asking: bool = False) -> None:
    """MIGRATE keys of a slot in the middle of a move (``asking``: from the importing node)."""
    with source.client(single_connection_client=True) as node:
        if asking:
            node.execute_command("ASKING")
        node.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *names)


def test_a_half_moved_slot_is_never_written(cluster: LocalCluster) -> None:
    """While MIGRATING, a call waits and, out of retries, says so in a coded error; a peer
    following ASK gets MOVING, also when the keys that say the schema (meta and schema) moved
    first; no other key is written on either node."""
    source, target = cluster.primaries()[1], cluster.primaries()[2]
    slot = lowest_slot(source)
    namespace = namespace_in_slot(slot, prefix="half")
    connection = agentfn.connect(source.url, decode_responses=True)
    agentfn.deploy(connection, namespace)
    client = agentfn.Client(connection, namespace)
    client.submit("echo", {})
    with source.client() as old, target.client() as new:
        before = old.cluster("countkeysinslot", slot)
        new.cluster("setslot", slot, "importing", old.execute_command("CLUSTER", "MYID"))
        old.cluster("setslot", slot, "migrating", new.execute_command("CLUSTER", "MYID"))
        try:
            client.route.deadline_s = 0.3
            with pytest.raises(agentfn.NamespaceMoving, match="being moved"):
                client.submit("echo", {})
            # A peer that follows ASK (redis-cli -c) reaches the importing node: the library
            # refuses with MOVING before any write.
            peer = subprocess.run(
                ["redis-cli", "-c", "-p", str(source.port), "FCALL", "agentfn_task_submit", "1"]
                + [client.root, "echo", "{}"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert "MOVING namespace" in peer.stdout + peer.stderr, peer
            assert old.cluster("countkeysinslot", slot) == before
            assert new.cluster("countkeysinslot", slot) == 0
            # The schema's keys moved first: the importing node can read the schema, and still
            # refuses (the functions' first read is multi-key with the root, which never exists).
            version_keys = [f"{client.root}:meta", f"{client.root}:schema"]
            _migrate_keys(source, target, version_keys)
            peer = subprocess.run(peer.args, capture_output=True, text=True, timeout=30)
            assert "MOVING namespace" in peer.stdout + peer.stderr, peer
            assert old.cluster("countkeysinslot", slot) == before - 2
            assert new.cluster("countkeysinslot", slot) == 2
            old.cluster("setslot", slot, "stable")  # the owner again: it takes them back
            _migrate_keys(target, source, version_keys, asking=True)
        finally:
            new.cluster("setslot", slot, "stable")
            old.cluster("setslot", slot, "stable")
    assert isinstance(client.submit("echo", {}), str)
