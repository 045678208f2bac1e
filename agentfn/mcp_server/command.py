"""`agentfn mcp`: serve the MCP tools over stdio (the default) or streamable HTTP (--http PORT).

    agentfn mcp --url redis://localhost:6379 --namespace prod                 # stdio
    agentfn mcp --url redis://localhost:6379 --http 8321                      # http://127.0.0.1:8321/mcp
"""

from __future__ import annotations

import argparse
import logging
import os
import socket

from ..bridges import http
from ..bridges.command import add_connection_options, checked_clients, redis_url, require
from ..cli import EXTRA_COMMANDS


def _setup(parser: argparse.ArgumentParser) -> None:
    add_connection_options(parser)
    parser.add_argument("--http", type=int, default=None, metavar="PORT",
                        help="serve streamable HTTP on PORT (path /mcp; 0 picks a free port) instead of stdio")
    parser.add_argument("--agent-id", default=None,
                        help="the server's own agent id: sender of its messages, owner of its inbox "
                             "(default: mcp-<host>-<pid>)")


def cmd_mcp(args: argparse.Namespace) -> None:
    require("mcp", "mcp", "mcp")
    from .server import build_server

    agent_id = args.agent_id or f"mcp-{socket.gethostname()}-{os.getpid()}"
    sync, client = checked_clients(redis_url(args), args.namespace)
    # Registered (with no capability) so that agents can message it; replies land in its inbox.
    sync.agent_register(agent_id, [], metadata={"kind": "mcp"})
    server = build_server(client, agent_id)
    logging.basicConfig(level=logging.WARNING)
    if args.http is None:
        server.run("stdio")
        return
    sock = http.bind(args.host, args.http)
    http.serve(server.streamable_http_app(host=args.host), sock, f"agentfn mcp: serving {http.base_url(sock)}/mcp "
                                                    f"(namespace {args.namespace}, agent {agent_id})")


EXTRA_COMMANDS["mcp"] = (_setup, cmd_mcp, "serve MCP tools that coordinate agents (stdio, or --http PORT)")
