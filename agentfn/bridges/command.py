"""What `agentfn mcp` and `agentfn a2a` share on the command line: options, the extra check, the
connection (checked before anything is served)."""

from __future__ import annotations

import argparse
import importlib.util
import os

import redis.asyncio

from ..cli import CliError, connect
from ..client import AsyncClient, Client


def require(module: str, extra: str, command: str) -> None:
    """Refuse to run (CliError) unless ``module`` can be imported."""
    if importlib.util.find_spec(module) is None:
        raise CliError(f"agentfn {command} needs the {extra} extra: pip install 'agentfn[{extra}]'")


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="Redis URL (default: $REDIS_URL)")
    parser.add_argument("--namespace", default=os.environ.get("AGENTFN_NAMESPACE", "default"),
                        help="namespace (default: $AGENTFN_NAMESPACE, else 'default')")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")


def redis_url(args: argparse.Namespace) -> str:
    """--url, else $REDIS_URL; a bridge serves a real namespace, never a temporary server."""
    url = args.url or os.environ.get("REDIS_URL")
    if not url:
        raise CliError("no Redis to talk to: pass --url redis://host:port or set REDIS_URL")
    return url


def checked_clients(url: str, namespace: str) -> tuple[Client, AsyncClient]:
    """A sync client (the reachability and library check runs on it now) and an asyncio client
    for the server's event loop."""
    sync = Client(connect(url), namespace)
    sync.check_library()
    return sync, AsyncClient(redis.asyncio.Redis.from_url(url, decode_responses=True), namespace)
