"""``agentfn.connect(url)``: one way to connect, whatever runs behind the URL.

- ``redis://`` / ``rediss://`` / ``unix://`` naming a plain server: a ``redis.Redis``;
- naming any node of a Redis Cluster (detected from the server: ``INFO cluster`` says
  ``cluster_enabled:1``): a ``redis.cluster.RedisCluster``;
- ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``: the primary that the
  sentinels name for ``service`` (redis-py's Sentinel ``master_for``: it follows failovers).

Options are passed to redis-py as they are (e.g. ``decode_responses=True``, ``password=...``),
with one default of agentfn's own: unless ``retry`` is given, redis-py never sends a command
again after an error (``Retry(NoBackoff(), 0)``, what redis-py did before 6.0). Since 6.0 its
default Retry re-sends a command after a TimeoutError or a dropped connection, when the command
may already have run: a second submit is a duplicate task, a second complete answers STALE.
agentfn's own routing (routing.py) sends a call again only when it certainly did not run.
docs/ARCHITECTURE.md "Timeouts and retries" says why.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..urls import SENTINEL_SCHEME, redact_url


def never_resent(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for a redis-py client, with no Retry of a command that may have been sent
    unless the caller chose a ``retry``."""
    return {"retry": Retry(NoBackoff(), 0), **options}


def _never_resent_async(options: dict[str, Any]) -> dict[str, Any]:
    return {"retry": AsyncRetry(NoBackoff(), 0), **options}


def _cluster_enabled(url: str, options: dict[str, Any]) -> bool:
    probe_options = {k: v for k, v in options.items() if k != "decode_responses"}
    probe = redis.Redis.from_url(url, **probe_options)
    try:
        return bool(probe.info("cluster").get("cluster_enabled"))
    except redis.exceptions.NoPermissionError:
        return False  # a user without +info (a cluster user needs it: README "Redis Cluster")
    finally:
        probe.close()


def _sentinel_parts(url: str) -> tuple[list[tuple[str, int]], str, dict[str, Any]]:
    """Sentinel addresses, service name and connection options of a redis+sentinel:// URL."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    credentials = netloc[0] if len(netloc) == 2 else ""
    hosts = netloc[-1]
    sentinels = []
    for address in hosts.split(","):
        host, _, port = address.rpartition(":")
        sentinels.append((host or address, int(port) if host else 26379))
    path = [piece for piece in parts.path.split("/") if piece]
    if not path:
        raise ValueError(
            f"{redact_url(url)}: a redis+sentinel URL names the service: .../<service>"
        )
    options: dict[str, Any] = {}
    if len(path) > 1:
        options["db"] = int(path[1])
    if credentials:
        user, _, password = credentials.partition(":")
        if user:
            options["username"] = unquote(user)
        if password:
            options["password"] = unquote(password)
    return sentinels, path[0], options


def connect(url: str, **options: Any) -> redis.Redis | redis.cluster.RedisCluster:
    """A connection to what ``url`` names: a server, a cluster (from any node), or a Sentinel
    service's primary. ``options`` go to redis-py (e.g. ``decode_responses=True``); without a
    ``retry`` of their own, no command is sent twice (never_resent; a RedisCluster's nodes
    already never re-send, its own retries serve only its direct commands)."""
    if url.startswith(SENTINEL_SCHEME + "://"):
        sentinels, service, auth = _sentinel_parts(url)
        sentinel = redis.sentinel.Sentinel(sentinels, **never_resent(options))
        primary: redis.Redis = sentinel.master_for(service, **auth, **never_resent(options))
        return primary
    if _cluster_enabled(url, options):
        return redis.cluster.RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **never_resent(options))


def asyncio_twin(url: str, connection: Any, **options: Any) -> Any:
    """The redis.asyncio counterpart of ``connection`` (what ``connect(url)`` returned), built
    without awaiting: an AsyncClient initializes a cluster's slot map on its first call."""
    if url.startswith(SENTINEL_SCHEME + "://"):
        sentinels, service, auth = _sentinel_parts(url)
        sentinel = redis.asyncio.sentinel.Sentinel(sentinels, **_never_resent_async(options))
        return sentinel.master_for(service, **auth, **_never_resent_async(options))
    if isinstance(connection, redis.cluster.RedisCluster):
        return redis.asyncio.cluster.RedisCluster.from_url(url, **options)
    return redis.asyncio.Redis.from_url(url, **_never_resent_async(options))


async def connect_async(
    url: str, **options: Any
) -> redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster:
    """The asyncio twin of ``connect``: redis.asyncio clients, a cluster's slot map loaded."""
    if url.startswith(SENTINEL_SCHEME + "://"):
        primary: redis.asyncio.Redis = asyncio_twin(url, None, **options)
        return primary
    probe = redis.asyncio.Redis.from_url(
        url, **{k: v for k, v in options.items() if k != "decode_responses"}
    )
    try:
        enabled = bool((await probe.info("cluster")).get("cluster_enabled"))
    except redis.exceptions.NoPermissionError:
        enabled = False
    finally:
        await probe.aclose()
    if not enabled:
        return redis.asyncio.Redis.from_url(url, **_never_resent_async(options))
    cluster = redis.asyncio.cluster.RedisCluster.from_url(url, **options)
    await cluster.initialize()
    return cluster
