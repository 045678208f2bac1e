"""Redis Cluster: tasks/s with 1, 2 and 3 primaries busy (one namespace each, one agent process
per namespace), and the cost of the durability option (WAIT for 1 replica after each write).

Starts its own 3-primary + 3-replica cluster of redis-server processes (tests/cluster/nodes.py).
Each namespace is pre-filled with pipelined submits, then drained by one `agentfn worker` process;
tasks/s is the number of tasks over the span from the first start to the last finish (server
times of the task records). Submit latency is measured one call at a time from this process.

    .venv/bin/python bench/cluster.py            # or: bench/run.py --only cluster
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import agentfn  # noqa: E402
from agentfn import keys  # noqa: E402
from tests.cluster.nodes import LocalCluster, namespace_on  # noqa: E402

CAPABILITY = "noop"
BATCH = 100


def done_key(namespace: str) -> str:
    """A list in the namespace's slot: the handler of the task marked last pushes to it."""
    return f"bench:{{{namespace}}}:done"


def noop_agent(client: agentfn.Client) -> agentfn.Agent:
    agent = agentfn.Agent(client, "bench-agent")

    @agent.handler(CAPABILITY)
    def noop(task: agentfn.TaskContext) -> None:
        if task.payload == "last":
            task.client.redis.rpush(done_key(task.client.namespace), task.id)

    return agent


@contextmanager
def worker(url: str, namespace: str, concurrency: int, wait_replicas: int) -> Iterator[None]:
    process = subprocess.Popen(
        [sys.executable, "-m", "agentfn", "worker", "bench.cluster:noop_agent", "--url", url]
        + ["--namespace", namespace, "--concurrency", str(concurrency), "--log-level", "ERROR"]
        + ["--wait-replicas", str(wait_replicas)],
        cwd=REPO,
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(15)


def prefill(client: agentfn.Client, count: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, BATCH):
        batch = agentfn.Batch(client)
        for index in range(start, min(count, start + BATCH)):
            batch.submit(CAPABILITY, "last" if index == count - 1 else None)
        ids.extend(batch.execute())
    return ids


def drain(
    connection: Any, url: str, namespaces: list[str], count: int, wait_replicas: int = 0
) -> float:
    """Tasks/s of one agent process per namespace draining ``count`` pre-filled tasks each."""
    clients = [agentfn.Client(connection, namespace) for namespace in namespaces]
    ids = {client.namespace: prefill(client, count) for client in clients}
    with ExitStack() as stack:
        for namespace in namespaces:
            stack.enter_context(worker(url, namespace, 16, wait_replicas))
        for client in clients:
            wait_done(client)
    starts, ends = [], []
    for client in clients:
        pipe = client.redis.pipeline(transaction=False)
        for task_id in ids[client.namespace]:
            pipe.hmget(keys.task(client.namespace, task_id), "started_ms", "finished_ms")
        for started, finished in pipe.execute():
            if started and finished:
                starts.append(int(started))
                ends.append(int(finished))
    return len(starts) / max(1, max(ends) - min(starts)) * 1000


def wait_done(client: agentfn.Client, timeout_s: float = 300) -> None:
    """Until the task marked last ran (BLPOP in slices shorter than the cluster's socket timeout)."""
    deadline = time.monotonic() + timeout_s
    while client.redis.blpop([done_key(client.namespace)], timeout=4) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"namespace {client.namespace} was not drained")


def submit_latency(client: agentfn.Client, samples: int) -> dict[str, float]:
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        client.submit(CAPABILITY, None)
        times.append((time.perf_counter() - began) * 1000)
    cuts = statistics.quantiles(times, n=100)
    return {"p50": cuts[49], "p99": cuts[98], "per_s": samples / (sum(times) / 1000)}


def run(tasks: int = 10_000, samples: int = 2_000) -> dict[str, Any]:
    cluster = LocalCluster.start(primaries=3, replicas=1)
    try:
        url = cluster.nodes[0].url
        connection = agentfn.connect(url, decode_responses=True)
        primaries = cluster.primaries()
        results: dict[str, Any] = {}
        for busy in (1, 2, 3):
            namespaces = [namespace_on(cluster, p, prefix=f"b{busy}x") for p in primaries[:busy]]
            for namespace in namespaces:
                agentfn.deploy(connection, namespace)
            results[f"tasks_per_s_{busy}_primaries"] = round(
                drain(connection, url, namespaces, tasks)
            )
        durable = namespace_on(cluster, primaries[0], prefix="dur")
        agentfn.deploy(connection, durable)
        results["tasks_per_s_1_primary_wait_replicas_1"] = round(
            drain(connection, url, [durable], tasks, wait_replicas=1)
        )
        plain = submit_latency(agentfn.Client(connection, durable), samples)
        waited = submit_latency(agentfn.Client(connection, durable, wait_replicas=1), samples)
        for name, figures in (("plain", plain), ("wait_replicas_1", waited)):
            results[f"submit_p50_ms_{name}"] = round(figures["p50"], 3)
            results[f"submit_p99_ms_{name}"] = round(figures["p99"], 3)
            results[f"submits_per_s_one_at_a_time_{name}"] = round(figures["per_s"])
        results["details"] = (
            f"{tasks:,} pre-filled no-op tasks per namespace, one `agentfn worker` process per "
            "namespace (concurrency 16), 3 primaries + 3 replicas on this one machine: the busy "
            "primaries, their replicas and the agent processes share its cores, so the 2- and "
            "3-primary figures show the machine's limit, not the cluster's. Submit latency: "
            f"{samples:,} single submits one after another from one process."
        )
        connection.close()
        return results
    finally:
        cluster.stop()


def main() -> None:
    for figure, value in run().items():
        print(f"{figure}: {value}")


if __name__ == "__main__":
    main()
