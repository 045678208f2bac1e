"""`agentfn mcp` and `agentfn a2a`: the namespace for other ecosystems' agents.

Their optional dependencies (the ``mcp`` SDK; ``a2a-sdk`` and uvicorn) are imported only when
the command runs; without them the command says which extra to install. Both serve a real
namespace (--url or $REDIS_URL, never a temporary server) and check its library first.

    agentfn mcp --url redis://localhost:6379 --namespace prod              # stdio
    agentfn mcp --url redis://localhost:6379 --http 8323                   # http://127.0.0.1:8323/mcp
    agentfn a2a --url redis://localhost:6379 --namespace prod --port 8322  # card + JSON-RPC at /
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import redis

from ..client.client import AsyncClient, Client
from ..client.connect import asyncio_twin
from ..constants import DEFAULTS
from ..errors import AgentfnError, AgentLapsed
from .common import CliError, Command, address, connect, listen, missing_extra, setup_logging

A2A_PORT = 8322


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="Redis URL (default: $REDIS_URL)")
    parser.add_argument(
        "--namespace",
        default=os.environ.get("AGENTFN_NAMESPACE", "default"),
        help="namespace (default: $AGENTFN_NAMESPACE, else 'default')",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )


def _clients(args: argparse.Namespace) -> tuple[Client, AsyncClient]:
    """A sync client (the reachability and library checks run on it now) and an asyncio
    client for the server's event loop, sharing the agent secrets the sync one registers with."""
    url = args.url or os.environ.get("REDIS_URL")
    if not url:
        raise CliError("no Redis to talk to: pass --url redis://host:port or set REDIS_URL")
    sync = Client(connect(url), args.namespace)
    sync.check_library()
    twin = asyncio_twin(url, sync.connection, decode_responses=True)
    client = AsyncClient(twin, args.namespace)
    client.agent_secrets = (
        sync.agent_secrets
    )  # the server's agent registers on sync, reads on client
    return sync, client


def _serve(app: Any, sock: Any, announce: str) -> None:
    """Serve ``app`` with uvicorn until SIGINT/SIGTERM, after one line on stderr (stdout may be
    a protocol channel): the socket already listens, so a reader of the line can connect."""
    import uvicorn

    print(announce, file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


def setup_mcp(parser: argparse.ArgumentParser) -> None:
    _connection(parser)
    parser.add_argument(
        "--http",
        type=int,
        default=None,
        metavar="PORT",
        help="serve streamable HTTP on PORT (path /mcp; 0 for any) instead of stdio",
    )
    parser.add_argument(
        "--agent-id",
        default=None,
        help="the server's own agent id: sender of its messages, owner of the inbox read_inbox "
        "reads (default: mcp-<host>-<pid>)",
    )


def cmd_mcp(args: argparse.Namespace) -> None:
    try:
        from ..mcp.server import build_server
    except ImportError as error:
        raise missing_extra("mcp", error) from None
    agent_id = args.agent_id or f"mcp-{socket.gethostname()}-{os.getpid()}"
    sync, client = _clients(args)
    server = build_server(client, agent_id)
    setup_logging("WARNING")
    with registered(sync, agent_id):
        if args.http is None:
            server.run("stdio")
            return
        sock = listen(args.host, args.http)
        _serve(
            server.streamable_http_app(host=args.host),
            sock,
            f"agentfn mcp: serving {address(sock)}/mcp (namespace {args.namespace}, agent {agent_id})",
        )


@contextmanager
def registered(sync: Client, agent_id: str) -> Iterator[None]:
    """The MCP server as an agent with no capability while it serves, so that agents can
    message it (replies land in its inbox): registered, kept live by a heartbeat every third of
    its time to live (registered again if it lapsed), deregistered when the server stops."""
    sync.agent_register(agent_id, [], metadata={"kind": "mcp"})
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(DEFAULTS["agent_ttl_ms"] / 3000):
            try:
                try:
                    sync.agent_heartbeat(agent_id)
                except AgentLapsed:
                    sync.agent_register(agent_id, [], metadata={"kind": "mcp"})
            except (AgentfnError, redis.RedisError) as error:
                logging.getLogger("agentfn.mcp").warning("heartbeat of %s: %s", agent_id, error)

    heartbeat = threading.Thread(target=beat, name="agentfn-mcp-heartbeat", daemon=True)
    heartbeat.start()
    # SIGTERM unwinds (uvicorn raises it again once it has stopped), so the finally below runs.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        yield
    finally:
        stop.set()
        heartbeat.join()
        with suppress(AgentfnError, redis.RedisError):  # else it lapses after its time to live
            sync.agent_deregister(agent_id)


def setup_a2a(parser: argparse.ArgumentParser) -> None:
    _connection(parser)
    parser.add_argument(
        "--port",
        type=int,
        default=A2A_PORT,
        help=f"port to listen on, 0 for any (default {A2A_PORT})",
    )
    parser.add_argument(
        "--public-url",
        default=None,
        help="the URL clients reach the gateway at, written in its card (default: http://host:port/)",
    )


def cmd_a2a(args: argparse.Namespace) -> None:
    try:
        import uvicorn  # noqa: F401  (checked now: the gateway needs it to serve)

        from ..a2a.gateway import build_app
    except ImportError as error:
        raise missing_extra("a2a", error) from None
    _, client = _clients(args)
    sock = listen(args.host, args.port)
    url = args.public_url or f"{address(sock)}/"
    setup_logging("WARNING")
    _serve(build_app(client, url), sock, f"agentfn a2a: serving {url} (namespace {args.namespace})")


#: The commands, as the CLI registers them: name -> (setup, handler, help).
COMMANDS: dict[str, Command] = {
    "mcp": (setup_mcp, cmd_mcp, "serve MCP tools that coordinate agents (agentfn[mcp])"),
    "a2a": (setup_a2a, cmd_a2a, "serve the namespace as an A2A agent (agentfn[a2a])"),
}
