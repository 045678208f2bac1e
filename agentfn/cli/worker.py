"""`agentfn worker module:attr`: serve an Agent from the command line until SIGTERM/SIGINT.

``attr`` names an :class:`agentfn.Agent` (created with ``client=None``, or with a client of its
own that --url replaces), or a callable that takes the :class:`agentfn.Client` the command
built from --url/--namespace and returns an Agent. The current directory is importable, as
with ``python -m``.

    agentfn worker myapp.agents:researcher --url redis://localhost:6379 --concurrency 8
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from ..agent.agent import Agent
from ..client.client import Client
from .common import CliError, Command, connect

_NO_REDIS = "no Redis to talk to: pass --url redis://host:port or set REDIS_URL"


def load_agent(target: str, client: Client | None) -> Agent:
    """Import ``module:attr`` (attr may be dotted) and return the Agent it names or builds."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise CliError(f"expected module:attribute, got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        value: object = importlib.import_module(module_name)
    except ImportError as error:
        raise CliError(f"cannot import {module_name}: {error}") from None
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise CliError(f"{module_name} has no attribute {attr}") from None
    if not isinstance(value, Agent) and callable(value):
        if client is None:
            raise CliError(_NO_REDIS)
        value = value(client)
    if not isinstance(value, Agent):
        raise CliError(f"{target} is neither an agentfn.Agent nor a callable returning one")
    return value


def _setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", help="module:attribute: an Agent, or a callable taking a Client and returning one"
    )
    parser.add_argument(
        "--url", default=None, help="Redis URL (default: $REDIS_URL, else the agent's own client)"
    )
    parser.add_argument(
        "--namespace",
        default=os.environ.get("AGENTFN_NAMESPACE", "default"),
        help="namespace (default: $AGENTFN_NAMESPACE, else 'default')",
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="tasks run at once (default: the agent's)"
    )
    parser.add_argument("--agent-id", default=None, help="agent id (default: the agent's)")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")


def cmd_worker(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    url = args.url or os.environ.get("REDIS_URL")
    client = Client(connect(url), args.namespace) if url else None
    agent = load_agent(args.target, client)
    if client is not None:
        agent.bind(client)
    elif agent.client is None:
        raise CliError(_NO_REDIS)
    if args.concurrency is not None:
        if args.concurrency < 1:
            raise CliError("--concurrency must be at least 1")
        agent.concurrency = args.concurrency
    if args.agent_id:
        agent.agent_id = args.agent_id
    agent.run()


COMMANDS: dict[str, Command] = {
    "worker": (_setup, cmd_worker, "serve an agent's handlers (module:attr) until SIGTERM/SIGINT"),
}
