"""A local Redis Cluster of real redis-server processes, for the cluster tests and bench/cluster.py.

``LocalCluster.start(primaries=3, replicas=1)`` picks free ports at run time (a node's port and
its cluster bus port, port + 10000), starts one redis-server per node in a temporary directory,
joins them with ``redis-cli --cluster create ... --cluster-yes`` and waits, with a deadline, until
every node reports ``cluster_state:ok`` and agrees on the slot map.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.crc import key_slot

#: How long a node may take to be unreachable before its replica takes over (ms): small, so
#: that the failover tests see an automatic failover within a couple of seconds.
NODE_TIMEOUT_MS = 1000

#: How long starting or re-forming the cluster may take (s).
START_DEADLINE_S = 60


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Re-check ``condition`` every 50 ms until it holds; TimeoutError naming ``what`` after timeout_s.

    For server states that no event announces (a cluster converging, a failover): Redis offers
    nothing to block on for them.
    """
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        pause.wait(0.05)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_node_port() -> int:
    """A port that is free, as is its cluster bus port (port + 10000)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port < 55000 and _port_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class Node:
    """One redis-server process of the cluster."""

    port: int
    directory: Path
    process: subprocess.Popen[str] | None = None
    host: str = "127.0.0.1"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    def client(self, **options: object) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, decode_responses=True, **options)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                self.host,
                "--dir",
                str(self.directory),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--cluster-replica-validity-factor",
                "0",
                "--appendonly",
                "no",
                "--save",
                "",
                "--logfile",
                "redis.log",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        wait_until(self.answers, 10, f"redis-server on {self.address}")

    def answers(self) -> bool:
        try:
            with self.client(socket_timeout=1) as probe:
                return bool(probe.ping())
        except redis.ConnectionError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown, nothing flushed."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class LocalCluster:
    """Primaries and replicas of a cluster started by ``start``; ``stop`` ends every process."""

    directory: Path
    nodes: list[Node] = field(default_factory=list)

    @classmethod
    def start(cls, primaries: int = 3, replicas: int = 1) -> LocalCluster:
        cluster = cls(Path(tempfile.mkdtemp(prefix="agentfn-cluster-")))
        try:
            for _ in range(primaries * (1 + replicas)):
                cluster.add_process()
            subprocess.run(
                [
                    "redis-cli",
                    "--cluster",
                    "create",
                    *(node.address for node in cluster.nodes),
                    "--cluster-replicas",
                    str(replicas),
                    "--cluster-yes",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            cluster.wait_ok()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def add_process(self) -> Node:
        """Start one more empty cluster-enabled redis-server (not yet part of the cluster)."""
        port = free_node_port()
        node = Node(port, self.directory / str(port))
        node.start()
        self.nodes.append(node)
        return node

    def live_nodes(self) -> list[Node]:
        return [node for node in self.nodes if node.alive]

    def wait_ok(self, timeout_s: float = START_DEADLINE_S) -> None:
        """Until every live node says cluster_state:ok and all agree on who serves each slot."""

        def converged() -> bool:
            maps = []
            for node in self.live_nodes():
                try:
                    with node.client(socket_timeout=2) as probe:
                        if probe.cluster("info")["cluster_state"] != "ok":
                            return False
                        maps.append(_slot_owners(probe))
                except redis.RedisError:
                    return False
            return bool(maps) and all(owners == maps[0] for owners in maps)

        wait_until(converged, timeout_s, "cluster_state:ok on every node")

    def wait_failover(self, dead: Node, timeout_s: float = 30) -> None:
        """Until the live nodes no longer give any slot to ``dead`` (a replica was promoted)."""

        def promoted() -> bool:
            for node in self.live_nodes():
                try:
                    with node.client(socket_timeout=2) as probe:
                        if any(port == dead.port for *_, port in _slot_owners(probe)):
                            return False
                except redis.RedisError:
                    return False
            return True

        wait_until(promoted, timeout_s, f"a replica of {dead.address} to be promoted")
        self.wait_ok(timeout_s)

    def wait_replicas(self, primary: Node, count: int, timeout_s: float = 30) -> None:
        """Until ``primary`` has ``count`` replicas in sync (online)."""

        def synced() -> bool:
            with primary.client() as probe:
                info = probe.info("replication")
            online = [
                value
                for name, value in info.items()
                if name.startswith("slave")
                and isinstance(value, dict)
                and value.get("state") == "online"
            ]
            return len(online) >= count

        wait_until(synced, timeout_s, f"{count} replica(s) of {primary.address}")

    def primaries(self) -> list[Node]:
        """Live nodes that serve slots, by port."""
        result = []
        for node in self.live_nodes():
            with node.client() as probe:
                if probe.info("replication")["role"] == "master" and _owns_slots(probe):
                    result.append(node)
        return sorted(result, key=lambda node: node.port)

    def replicas(self) -> list[Node]:
        result = []
        for node in self.live_nodes():
            with node.client() as probe:
                if probe.info("replication")["role"] == "slave":
                    result.append(node)
        return sorted(result, key=lambda node: node.port)

    def node_at(self, address: str) -> Node:
        return next(node for node in self.nodes if node.address == address)

    def owner(self, key: str) -> Node:
        """The primary serving ``key``'s slot, according to any live node."""
        node = self.live_nodes()[0]
        with node.client() as probe:
            slot = probe.cluster("keyslot", key)
            for start, end, primary, *_ in probe.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return self.node_at(f"{self.nodes[0].host}:{primary[1]}")
        raise LookupError(f"no node serves the slot of {key}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _slot_owners(probe: redis.Redis) -> list[tuple[int, int, int]]:
    return sorted(
        (start, end, primary[1])
        for start, end, primary, *_ in probe.execute_command("CLUSTER", "SLOTS")
    )


def _owns_slots(probe: redis.Redis) -> bool:
    myself = probe.execute_command("CLUSTER", "MYID")
    return any(
        primary[2] == myself for _, _, primary, *_ in probe.execute_command("CLUSTER", "SLOTS")
    )


def node_id(node: Node) -> str:
    with node.client() as probe:
        return str(probe.execute_command("CLUSTER", "MYID"))


def lowest_slot(node: Node) -> int:
    """The first slot ``node`` serves: the one `redis-cli --cluster reshard --cluster-slots 1
    --cluster-from <node>` moves."""
    with node.client() as probe:
        myself = probe.execute_command("CLUSTER", "MYID")
        return min(
            start
            for start, _, primary, *_ in probe.execute_command("CLUSTER", "SLOTS")
            if primary[2] == myself
        )


def namespace_in_slot(slot: int, prefix: str = "mv") -> str:
    """A namespace name whose root key ``agentfn:{name}`` hashes to ``slot``."""
    for index in range(1_000_000):
        name = f"{prefix}{index}"
        if key_slot(f"agentfn:{{{name}}}".encode()) == slot:
            return name
    raise LookupError(f"no namespace name found for slot {slot}")


def reshard_one_slot(cluster: LocalCluster, source: Node, target: Node) -> str:
    """Move ``source``'s lowest slot to ``target`` with the standard tool; its output."""
    done = subprocess.run(
        [
            "redis-cli",
            "--cluster",
            "reshard",
            source.address,
            "--cluster-from",
            node_id(source),
            "--cluster-to",
            node_id(target),
            "--cluster-slots",
            "1",
            "--cluster-yes",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(f"reshard failed: {done.stdout[-2000:]} {done.stderr}")
    cluster.wait_ok()
    return done.stdout


def namespace_on(cluster: LocalCluster, node: Node, prefix: str = "ns") -> str:
    """A namespace name whose root key ``agentfn:{name}`` lands on ``node``'s slots."""
    with node.client() as probe:
        myself = probe.execute_command("CLUSTER", "MYID")
        ranges = [
            (start, end)
            for start, end, primary, *_ in probe.execute_command("CLUSTER", "SLOTS")
            if primary[2] == myself
        ]
        for index in range(10_000):
            name = f"{prefix}{index}"
            slot = probe.cluster("keyslot", f"agentfn:{{{name}}}")
            if any(start <= slot <= end for start, end in ranges):
                return name
    raise LookupError(f"no namespace found for {node.address}")
