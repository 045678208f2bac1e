"""What every command module shares: the error a command reports, the connection, the common options."""

from __future__ import annotations

import argparse
import json
import os
import socket
from collections.abc import Callable
from typing import Any

import redis

from ..server import temporary_server_url

#: One subcommand: setup(parser) adds its arguments, handler(args) runs it, and its help line.
Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], Any], str]


class CliError(Exception):
    """A failure reported as one line on stderr with exit code 1."""


def connect(url: str | None) -> redis.Redis:
    """A redis-py client for --url, else REDIS_URL, else a temporary embedded redis-server."""
    url = url or os.environ.get("REDIS_URL") or temporary_server_url()
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        client.ping()
    except redis.ConnectionError as error:
        raise CliError(f"cannot reach Redis at {url}: {error}") from None
    return client


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def add_url_argument(parser: argparse.ArgumentParser) -> None:
    """--url: the Redis to use (a temporary embedded redis-server when neither it nor $REDIS_URL is given)."""
    parser.add_argument(
        "--url",
        default=None,
        help="Redis URL (default: $REDIS_URL, else a temporary embedded redis-server)",
    )


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    add_url_argument(parser)
    parser.add_argument(
        "--namespace",
        default=os.environ.get("AGENTFN_NAMESPACE", "default"),
        help="namespace (default: $AGENTFN_NAMESPACE, else 'default')",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def listen(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port), so the printed address is the real one:
    a client that reads it can connect at once (the kernel queues it until the server accepts)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def address(sock: socket.socket) -> str:
    """``http://host:port`` of a listening socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def missing_extra(extra: str, error: ImportError) -> CliError:
    """The error of a command whose optional dependency is not installed, naming the extra."""
    return CliError(
        f"this command needs the {extra} extra ({error.name} is missing): "
        f"pip install 'agentfn[{extra}]'"
    )
