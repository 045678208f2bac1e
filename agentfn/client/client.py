"""Client (redis-py) and AsyncClient (redis.asyncio): one method per library function.

Both share the method definitions of the API mixins; they differ only in the call helper,
which sends FCALL (FCALL_RO for no-writes functions), decodes the reply, maps a coded error
to its exception class, and on first use checks that the deployed library is compatible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio
from redis.cluster import ClusterNode, RedisCluster

from .. import keys
from ..errors import (
    ErrorCode,
    LibraryNotReady,
    NotReplicated,
    is_missing_function,
    library_error,
    permission_denied,
)
from ..library.info import LibraryInfo, compatibility_problem
from ..replies import decode_reply
from ..urls import url_of
from .api.base import Parser, build_call
from .api.messages import MessagesApi
from .api.meta import MetaApi
from .api.registry import RegistryApi
from .api.tasks import TasksApi
from .api.workflows import WorkflowsApi
from .routing import Durability, Route


def _translate(error: redis.ResponseError, client: _ClientCore, function: str) -> Exception:
    """The exception for an error reply to a call of ``function``: the library's coded error,
    an ACL refusal (also wrapped in INTERNAL when Redis 7.0 refused a command the function
    runs) as PermissionDenied, a missing library as LibraryNotReady; else the error itself."""
    # Only Redis's own refusal, or INTERNAL around one: a library error may quote user text.
    if isinstance(error, redis.exceptions.NoPermissionError) or str(error).startswith(
        ErrorCode.INTERNAL.value + " "
    ):
        user = client.route.connection_kwargs().get("username")
        refusal = permission_denied(str(error), user, function, client.namespace)
        if refusal is not None:
            return refusal
    ours = library_error(str(error))
    if ours is not None:
        return ours
    if is_missing_function(error):  # Redis restarted without persistence, a node without it...
        # url_of(client.redis): the server, or on a cluster the primary serving the namespace.
        return LibraryNotReady(
            compatibility_problem(None, client.namespace, url_of(client.redis)) or str(error)
        )
    return error


def _raise_unless_missing(error: redis.ResponseError, client: _ClientCore) -> None:
    """agentfn_version failed: return when the library is not loaded, else raise the error, translated."""
    if not is_missing_function(error):
        raise _translate(error, client, "agentfn_version") from None


class _ClientCore:
    """What every client holds besides its methods: the connection, the namespace, reply handling."""

    def __init__(
        self,
        redis_client: Any,
        namespace: str | None = None,
        *,
        check_library: bool = True,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> None:
        """``redis_client``: a redis.Redis, a RedisCluster (or their asyncio twins), e.g. from
        ``agentfn.connect(url)``. ``namespace``: else $AGENTFN_NAMESPACE, else ``default``
        (keys.resolve_namespace). ``wait_replicas`` > 0: every write call also waits until that
        many replicas acknowledged it (WAIT), else raises NotReplicated after ``wait_timeout_ms``.
        """
        self.namespace = keys.validate_namespace(keys.resolve_namespace(namespace))
        self.root = keys.root(self.namespace)
        shared = isinstance(redis_client, Route) and redis_client.key == self.root
        self.route = redis_client if shared else Route(redis_client, self.root)
        if wait_replicas > 0:
            self.route.durability = Durability(wait_replicas, wait_timeout_ms)
        self._library_checked = not check_library
        self.agent_secrets: dict[str, str] = {}
        # A connection that already decodes to str needs no walk over every reply.
        self.decodes_replies = bool(self.route.connection_kwargs().get("decode_responses"))

    @property
    def redis(self) -> Any:
        """A redis.Redis (redis.asyncio.Redis) on the server that holds the namespace: the server
        given, or on a cluster the primary serving the namespace's slot (it follows moves)."""
        return self.route.redis

    @property
    def connection(self) -> Any:
        """The connection this client was made with (a server, or a RedisCluster)."""
        return self.route.cluster if self.route.cluster is not None else self.route.redis

    def _finish(self, reply: Any, parse: Parser | None) -> Any:
        """A call's reply as its method returns it: decoded (unless the connection decodes), parsed."""
        if not self.decodes_replies:
            reply = decode_reply(reply)
        return parse(reply) if parse else reply

    def _raise_if_incompatible(self, reply: Any) -> None:
        info = None if reply is None else LibraryInfo.from_reply(decode_reply(reply))
        problem = compatibility_problem(info, self.namespace, url_of(self.redis))
        if problem:
            raise LibraryNotReady(problem)
        self._library_checked = True


class _ApiMixins(MetaApi, RegistryApi, MessagesApi, TasksApi, WorkflowsApi):
    """One method per library function (api/), typed as the synchronous Client returns them."""


class _ClientBase(_ApiMixins, _ClientCore):
    """Client and Batch: the API methods over a connection."""


if TYPE_CHECKING:
    # mypy reads AsyncClient's API methods from async_surface.pyi, generated from the mixins
    # (agentfn/client/surface.py says why): the same parameters, declared async. At run time
    # they are the mixins' own, whose _call returns an awaitable on an AsyncClient.
    from .async_surface import AsyncApi as _AsyncApi
else:
    _AsyncApi = _ApiMixins


class Client(_ClientBase):
    """Synchronous client over a ``redis.Redis`` connection."""

    def check_library(self) -> None:
        """Raise LibraryNotReady (naming the command to run) unless the deployed library fits."""
        try:
            reply = self.route.execute("FCALL_RO", "agentfn_version", 1, self.root)
        except redis.ResponseError as error:
            _raise_unless_missing(error, self)
            reply = None
        self._raise_if_incompatible(reply)

    def _call(
        self,
        name: str,
        positional: Sequence[Any],
        options: Mapping[str, Any] | None = None,
        parse: Parser | None = None,
    ) -> Any:
        command, args = build_call(name, self.root, positional, options)
        if not self._library_checked:
            self.check_library()
        try:
            reply = self.route.execute(command, *args)
        except redis.ResponseError as error:
            raise _translate(error, self, name) from None
        except NotReplicated as error:
            error.result = self._finish(error.reply, parse)
            raise
        return self._finish(reply, parse)


class AsyncClient(_AsyncApi, _ClientCore):
    """asyncio client over a ``redis.asyncio.Redis`` connection; every method returns an awaitable."""

    async def check_library(self) -> None:
        """Raise LibraryNotReady (naming the command to run) unless the deployed library fits."""
        try:
            reply = await self.route.execute_async("FCALL_RO", "agentfn_version", 1, self.root)
        except redis.ResponseError as error:
            _raise_unless_missing(error, self)
            reply = None
        self._raise_if_incompatible(reply)

    def _call(
        self,
        name: str,
        positional: Sequence[Any],
        options: Mapping[str, Any] | None = None,
        parse: Parser | None = None,
    ) -> Any:
        command, args = build_call(name, self.root, positional, options)
        return self._send(name, command, args, parse)

    async def _send(
        self, name: str, command: str, args: list[str | int], parse: Parser | None
    ) -> Any:
        if not self._library_checked:
            await self.check_library()
        try:
            reply = await self.route.execute_async(command, *args)
        except redis.ResponseError as error:
            raise _translate(error, self, name) from None
        except NotReplicated as error:
            error.result = self._finish(error.reply, parse)
            raise
        return self._finish(reply, parse)


#: The connection settings an asyncio pool shares with a synchronous one.
_SHARED_SETTINGS = (
    "host",
    "port",
    "db",
    "username",
    "password",
    "path",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "socket_keepalive_options",
    "decode_responses",
    "encoding",
    "encoding_errors",
    "client_name",
    "health_check_interval",
    "retry_on_timeout",
    "protocol",
    "credential_provider",
)

_SYNC_CONNECTION = {
    "Connection": redis.Connection,
    "SSLConnection": redis.SSLConnection,
    "UnixDomainSocketConnection": redis.UnixDomainSocketConnection,
}


def _sync_settings(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: value
        for name, value in kwargs.items()
        if name in _SHARED_SETTINGS or name.startswith("ssl_")
    }


def _sync_connection_class(name: str) -> type[redis.Connection]:
    connection_class = _SYNC_CONNECTION.get(name)
    if connection_class is None:
        raise TypeError(
            f"cannot run an agent on a {name} connection: "
            "bind it to a Client(agentfn.connect(url)) instead"
        )
    return connection_class


def _sync_cluster(cluster: Any) -> RedisCluster:
    """A synchronous RedisCluster on the nodes and settings of an asyncio one."""
    nodes = list(cluster.nodes_manager.startup_nodes.values())
    settings = _sync_settings(nodes[0].connection_kwargs)
    for name in ("host", "port", "db", "path"):
        settings.pop(name, None)
    if _sync_connection_class(nodes[0].connection_class.__name__) is redis.SSLConnection:
        settings["ssl"] = True
    return RedisCluster(
        startup_nodes=[ClusterNode(node.host, node.port) for node in nodes],
        **settings,
    )


def sync_twin(client: Client | AsyncClient) -> Client:
    """A synchronous Client on the same server (or cluster), settings, namespace and durability
    as ``client``.

    The agent runtime does its Redis I/O from threads, over redis-py's synchronous client (it
    is faster there, and a thread cannot use an asyncio connection): an agent bound to an
    AsyncClient runs its machinery on this twin, and its handlers get the AsyncClient.
    """
    if isinstance(client, Client):
        return client
    twin: Any
    if client.route.cluster is not None:  # an asyncio RedisCluster
        twin = _sync_cluster(client.route.cluster)
    else:
        pool = client.redis.connection_pool
        connection_class = _sync_connection_class(pool.connection_class.__name__)
        twin = redis.Redis(
            connection_pool=redis.ConnectionPool(
                connection_class=connection_class, **_sync_settings(pool.connection_kwargs)
            )
        )
    durability = client.route.durability
    sync = Client(
        twin,
        client.namespace,
        check_library=not client._library_checked,
        wait_replicas=durability.replicas if durability else 0,
        wait_timeout_ms=durability.timeout_ms if durability else 1000,
    )
    sync.agent_secrets = client.agent_secrets  # the agents either registered: known to both
    return sync
