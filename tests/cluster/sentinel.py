"""A Sentinel-managed primary with two replicas and one sentinel, started by a test."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .nodes import free_node_port, wait_until

SERVICE = "agentfn-primary"


@dataclass
class SentinelGroup:
    directory: Path
    servers: dict[int, subprocess.Popen[str]] = field(default_factory=dict)
    sentinel_port: int = 0
    sentinel: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{SERVICE}"

    def start_server(self, port: int, replica_of: int | None = None) -> None:
        folder = self.directory / str(port)
        folder.mkdir(exist_ok=True)
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
        args += ["--save", "", "--appendonly", "no", "--logfile", "redis.log"]
        if replica_of:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.servers[port] = subprocess.Popen(args, text=True)
        wait_until(lambda: _answers(port), 10, f"redis-server on {port}")

    def primary_port(self) -> int:
        with redis.Redis(port=self.sentinel_port, decode_responses=True) as sentinel:
            return int(sentinel.sentinel_get_master_addr_by_name(SERVICE)[1])

    def kill(self, port: int) -> None:
        self.servers[port].kill()
        self.servers[port].wait(10)

    def wait_synced(self, replicas: int) -> None:
        def synced() -> bool:
            with redis.Redis(port=self.primary_port(), decode_responses=True) as primary:
                info = primary.info("replication")
            return (
                sum(
                    1
                    for key, value in info.items()
                    if key.startswith("slave")
                    and isinstance(value, dict)
                    and value.get("state") == "online"
                )
                >= replicas
            )

        wait_until(synced, 30, f"{replicas} replicas in sync")

    def stop(self) -> None:
        for process in [*self.servers.values(), self.sentinel]:
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)

    @classmethod
    def start(cls) -> SentinelGroup:
        group = cls(Path(tempfile.mkdtemp(prefix="agentfn-sentinel-")))
        try:
            primary = free_node_port()
            group.start_server(primary)
            for _ in range(2):
                group.start_server(free_node_port(), replica_of=primary)
            group.sentinel_port = free_node_port()
            config = group.directory / "sentinel.conf"
            config.write_text(
                f"port {group.sentinel_port}\nbind 127.0.0.1\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 1\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 2\n"
                f"logfile {group.directory / 'sentinel.log'}\n"
            )
            group.sentinel = subprocess.Popen(
                ["redis-server", str(config), "--sentinel"], text=True
            )
            wait_until(lambda: _answers(group.sentinel_port), 10, "the sentinel")
            group.wait_synced(2)

            def sees_replicas() -> bool:
                with redis.Redis(port=group.sentinel_port, decode_responses=True) as sentinel:
                    return len(sentinel.sentinel_slaves(SERVICE)) == 2

            wait_until(sees_replicas, 30, "the sentinel to see both replicas")
        except BaseException:
            group.stop()
            raise
        return group


def _answers(port: int) -> bool:
    try:
        with redis.Redis(port=port, socket_timeout=1) as probe:
            return bool(probe.ping())
    except redis.ConnectionError:
        return False
