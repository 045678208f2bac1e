"""Serve an ASGI app (the MCP or A2A server) on a socket bound before it is announced.

The socket is bound and listening before the first line goes to stderr, so a caller that reads
that line (a test, a supervisor) can connect at once; ``--port 0`` picks a free port and the
line names it.
"""

from __future__ import annotations

import socket
import sys
from typing import Any


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(app: Any, sock: socket.socket, announce: str, log_level: str = "warning") -> None:
    """Run ``app`` with uvicorn on ``sock`` until SIGINT/SIGTERM, after printing ``announce``
    (one line) on stderr."""
    import uvicorn

    print(announce, file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on"))
    server.run(sockets=[sock])
