"""`agentfn demo`: agents coordinating through Redis, live in the terminal, in a few seconds.

What it does:

1. starts a temporary redis-server (EmbeddedRedis), unless --url names one (then it works in
   a fresh namespace, demo-<timestamp>, and touches nothing else), and deploys the library;
2. starts four agents as separate OS processes with ``agentfn worker``: two researchers, a
   writer and a coder (agentfn/cli/demo/agents.py);
3. runs the workflow of Redis's multi-agent write-up, research -> write -> code example;
4. runs a parallel workflow: three research steps fanned out, fanned in by one write step,
   then a code example. While it runs, researcher-1 is killed with SIGKILL as soon as it holds
   one of the research tasks: its lease (2 s) expires, the surviving agents' reaper puts the task
   back, and researcher-2 completes it;
5. along the way the writer checks a fact with a researcher (a request and its reply) and the
   coder credits the researchers whose findings it used: agent-to-agent messages;
6. shows the results, per-step timings and totals, then stops the agents and the server.

Everything on screen comes from the namespace's event stream (XREAD BLOCK), the same stream
``agentfn events`` shows; nothing is polled.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time

from ... import keys
from ...client.client import Client
from ...library.deploy import deploy
from ...server import EmbeddedRedis
from ...urls import redact_url
from ..common import CliError, Command, UsageError, connect, positive_seconds
from ..views import make_console
from .fleet import Fleet
from .screen import report
from .script import DemoFailed, run_scenario, verdict

#: Most seconds the whole demo may take before it gives up.
DEFAULT_TIMEOUT_S = 60.0


def setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=None,
        help="run against this Redis, in a fresh namespace (default: a temporary redis-server)",
    )
    parser.add_argument(
        "--namespace",
        default=None,
        help="namespace to use with --url (default: demo-<timestamp>; it must be new)",
    )
    parser.add_argument(
        "--no-live", action="store_true", help="plain lines instead of a live screen (CI, pipes)"
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT_S,
        help=f"give up after this many seconds (default {DEFAULT_TIMEOUT_S:g})",
    )


def run(args: argparse.Namespace) -> None:
    began = time.monotonic()
    console = make_console()
    live = not args.no_live and console.is_terminal
    namespace = args.namespace or ("demo" if not args.url else time.strftime("demo-%Y%m%d-%H%M%S"))
    try:
        keys.validate_namespace(namespace)
    except ValueError as error:
        raise UsageError(f"--namespace {namespace!r}: {error}") from None
    with contextlib.ExitStack() as stack:
        if args.url:
            url, where = args.url, redact_url(args.url)
        else:
            server = stack.enter_context(EmbeddedRedis())
            url, where = (
                server.url,
                f"temporary redis-server pid {server.pid} on 127.0.0.1:{server.port}",
            )
        connection = connect(url)
        stack.callback(connection.close)
        client = Client(connection, namespace)
        if connection.exists(keys.meta(namespace), keys.events(namespace)):
            raise CliError(f"namespace {namespace} is not empty: pick a new one with --namespace")
        print(f"agentfn demo: {where}, namespace {namespace}", flush=True)
        print(deploy(connection, namespace).summary(), flush=True)
        fleet = Fleet(
            url, namespace, stack.enter_context(tempfile.TemporaryDirectory(prefix="agentfn-demo-"))
        )
        stack.callback(fleet.stop)
        fleet.start()
        tracker = run_scenario(client, fleet, where, console, live=live, timeout=args.timeout)
        fleet.stop()
        report(console, tracker, time.monotonic() - began)
        problem = verdict(tracker)
        if problem:
            raise DemoFailed(problem)
        if args.url:
            print(
                f"The demo's keys stay in namespace {namespace} until they expire: "
                f"agentfn status --url {where} --namespace {namespace}"
            )
    stopped = (
        "the agents are stopped" if args.url else "the agents and the redis-server are stopped"
    )
    print(f"demo finished in {time.monotonic() - began:.1f} s; {stopped}")


COMMANDS: dict[str, Command] = {
    "demo": (setup, run, "agents coordinating through a temporary redis-server, live"),
}
