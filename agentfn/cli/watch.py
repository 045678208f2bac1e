"""`agentfn dashboard` and `agentfn metrics`: the web dashboard, and a Prometheus endpoint alone.

Their optional dependencies (starlette and uvicorn; prometheus_client) are imported only when
the command runs; without them the command says which extra to install.

    agentfn dashboard --url redis://localhost:6379 --namespace default --namespace batch --allow-actions
    agentfn metrics --url redis://localhost:6379 --port 9464
"""

from __future__ import annotations

import argparse
import os

from ..errors import LibraryNotReady
from ..keys import validate_namespace
from ..library.deploy import deploy, deployed_library
from ..library.info import compatibility_problem
from ..server import temporary_server_url
from ..urls import redact_url
from .common import CliError, Command, add_url_argument, address, connect, listen, missing_extra

DEFAULT_PORT = 8321
METRICS_PORT = 9464


def _namespaces(args: argparse.Namespace) -> list[str]:
    names = args.namespace or [os.environ.get("AGENTFN_NAMESPACE", "default")]
    try:
        return list(dict.fromkeys(validate_namespace(name) for name in names))
    except ValueError as error:
        raise CliError(f"--namespace: {error}") from None


def _open(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The Redis URL to serve and the namespaces, each checked to have the library deployed.

    Without --url and REDIS_URL, a temporary embedded redis-server (deployed, empty).
    """
    namespaces = _namespaces(args)
    url = args.url or os.environ.get("REDIS_URL")
    temporary = url is None
    url = url or temporary_server_url()
    client = connect(url)
    for namespace in namespaces:
        if temporary:
            deploy(client, namespace)
        elif deployed_library(client, namespace) is None:
            raise LibraryNotReady(compatibility_problem(None, namespace, redact_url(url)) or "")
    client.close()
    return url, namespaces


def _common(parser: argparse.ArgumentParser, port: int) -> None:
    add_url_argument(parser)
    parser.add_argument(
        "--namespace",
        action="append",
        default=None,
        help="a namespace to watch; repeat for several (default: $AGENTFN_NAMESPACE, else 'default')",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=port, help=f"port to listen on, 0 for any (default {port})"
    )


def setup_dashboard(parser: argparse.ArgumentParser) -> None:
    _common(parser, DEFAULT_PORT)
    parser.add_argument(
        "--allow-actions",
        action="store_true",
        help="offer requeue, signal and cancel buttons (POST with a CSRF token)",
    )


def setup_metrics(parser: argparse.ArgumentParser) -> None:
    _common(parser, METRICS_PORT)


def cmd_dashboard(args: argparse.Namespace) -> None:
    try:
        import uvicorn

        from ..dashboard.app import Dashboard
    except ImportError as error:
        raise missing_extra("dashboard", error) from None
    url, namespaces = _open(args)
    dashboard = Dashboard(url, namespaces, allow_actions=args.allow_actions)
    try:
        from ..dashboard.metrics import exposition

        dashboard.metrics = exposition(dashboard.redis, namespaces)
    except ImportError:
        pass  # /metrics says which extra it needs
    sock = listen(args.host, args.port)
    print(
        f"agentfn dashboard: {address(sock)}/  (Redis {redact_url(url)}, namespaces {', '.join(namespaces)}, "
        f"actions {'on' if args.allow_actions else 'off'}; Ctrl-C to stop)",
        flush=True,
    )
    config = uvicorn.Config(
        dashboard.app(), log_level="warning", timeout_graceful_shutdown=1, lifespan="on"
    )
    uvicorn.Server(config).run(sockets=[sock])


def cmd_metrics(args: argparse.Namespace) -> None:
    try:
        from ..dashboard.metrics import serve_metrics
    except ImportError as error:
        raise missing_extra("metrics", error) from None
    url, namespaces = _open(args)
    sock = listen(args.host, args.port)
    print(
        f"agentfn metrics: {address(sock)}/metrics  (Redis {redact_url(url)}, namespaces {', '.join(namespaces)}; "
        "Ctrl-C to stop)",
        flush=True,
    )
    serve_metrics(connect(url), namespaces, sock)


#: The commands, as the CLI registers them: name -> (setup, handler, help).
COMMANDS: dict[str, Command] = {
    "dashboard": (
        setup_dashboard,
        cmd_dashboard,
        "a live web dashboard of namespaces (agentfn[dashboard])",
    ),
    "metrics": (
        setup_metrics,
        cmd_metrics,
        "serve Prometheus metrics of namespaces (agentfn[metrics])",
    ),
}
