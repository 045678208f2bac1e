"""`agentfn a2a`: serve a namespace as an A2A agent (card, JSON-RPC, streaming).

    agentfn a2a --url redis://localhost:6379 --namespace prod --port 8322
"""

from __future__ import annotations

import argparse
import logging

from ..bridges import http
from ..bridges.command import add_connection_options, checked_clients, redis_url, require
from ..cli import EXTRA_COMMANDS


def _setup(parser: argparse.ArgumentParser) -> None:
    add_connection_options(parser)
    parser.add_argument("--port", type=int, default=8322, help="port to listen on (default: 8322; 0: a free one)")
    parser.add_argument("--public-url", default=None,
                        help="the URL clients reach the gateway at, written in the card (default: http://host:port/)")


def cmd_a2a(args: argparse.Namespace) -> None:
    require("a2a", "a2a", "a2a")
    from .gateway import build_app

    _, client = checked_clients(redis_url(args), args.namespace)
    sock = http.bind(args.host, args.port)
    url = args.public_url or f"{http.base_url(sock)}/"
    logging.basicConfig(level=logging.WARNING)
    http.serve(build_app(client, url), sock, f"agentfn a2a: serving {url} (namespace {args.namespace})")


EXTRA_COMMANDS["a2a"] = (_setup, cmd_a2a, "serve the namespace as an A2A agent (one skill per capability)")
