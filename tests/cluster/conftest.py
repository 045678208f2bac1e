"""The shared cluster: 3 primaries + 3 replicas of real redis-server processes, one per session.

Each test starts from empty primaries without the library (FLUSHALL + FUNCTION FLUSH on every
primary, replicated to the replicas). ``spread`` names one namespace per primary.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import redis.cluster

from .nodes import LocalCluster, namespace_on


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster.start(primaries=3, replicas=1)
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster(local_cluster: LocalCluster) -> LocalCluster:
    """The shared cluster, emptied: no keys, no functions, every node agreeing on the slot map."""
    local_cluster.wait_ok()
    for node in local_cluster.primaries():
        with node.client() as primary:
            primary.flushall()
            primary.function_flush()
            primary.execute_command("WAIT", 1, 5000)
    return local_cluster


@pytest.fixture
def spread(cluster: LocalCluster) -> list[str]:
    """One namespace per primary, in the order of ``cluster.primaries()``."""
    return [namespace_on(cluster, node) for node in cluster.primaries()]


@pytest.fixture
def rc(cluster: LocalCluster) -> Iterator[redis.cluster.RedisCluster]:
    """A decoded RedisCluster client started from one node."""
    client = redis.cluster.RedisCluster.from_url(cluster.nodes[0].url, decode_responses=True)
    yield client
    client.close()
