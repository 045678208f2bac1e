"""The README's "Redis Cluster" commands, run as written on the local cluster (hosts replaced)."""

from __future__ import annotations

import shlex
import subprocess
import sys

import agentfn

from ..agent_fixtures import REPO
from .nodes import LocalCluster, namespace_on
from .waiting import wait_all_completed

MARKER = "<!-- cluster-commands:"


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split(MARKER, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_cluster_commands_run(cluster: LocalCluster) -> None:
    home, other = cluster.primaries()[0], cluster.primaries()[1]
    namespace = namespace_on(cluster, home, prefix="readme")
    url = cluster.replicas()[0].url  # any node
    replacements = {
        "redis://10.0.0.1:7000": url,
        "10.0.0.3:7000": other.address,
        "fleet-a": namespace,
        "myapp.agents:agent": "tests.cluster.agents:echo",
    }
    worker = None
    client = agentfn.Client(agentfn.connect(url, decode_responses=True), namespace)
    submitted: list[str] = []
    try:
        for line in readme_commands():
            for old, new in replacements.items():
                line = line.replace(old, new)
            argv = [sys.executable, "-m", "agentfn", *shlex.split(line)[1:]]
            if argv[3] == "worker":
                worker = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE, text=True)
                submitted += [client.submit("echo", {"n": n}) for n in range(5)]
                continue
            done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, f"{line}: {done.stdout} {done.stderr}"
            submitted.append(client.submit("echo", {"after": line}))
        assert cluster.owner(client.root).port == other.port  # `cluster move` moved it
        wait_all_completed(client, submitted, timeout=30)  # the worker went on after the move
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(15)
