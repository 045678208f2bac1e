"""The agentfn command line: render, deploy, migrate, version, protocol (and more per area)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import redis

from . import protocol_doc
from .deploy import deploy, deployed_library
from .errors import AgentfnError
from .migrate import migrate
from .render import render_library
from .server import temporary_server_url
from .version import __version__


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


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def cmd_render(args: argparse.Namespace) -> None:
    sys.stdout.write(render_library().source)


def cmd_deploy(args: argparse.Namespace) -> None:
    report = deploy(connect(args.url), args.namespace, force=args.force)
    if args.json:
        _print_json({"loaded": report.loaded, "version": report.version, "code_sha": report.code_sha,
                     "migrations": [m.path.name for m in report.migrations]})
    else:
        print(report.summary())


def cmd_migrate(args: argparse.Namespace) -> None:
    applied = migrate(connect(args.url), args.namespace)
    if args.json:
        _print_json({"applied": [m.path.name for m in applied]})
    else:
        print("applied " + ", ".join(m.path.name for m in applied) if applied else "up to date")


def cmd_version(args: argparse.Namespace) -> None:
    library = render_library()
    info = deployed_library(connect(args.url), args.namespace) if (args.url or os.environ.get("REDIS_URL")) else None
    if args.json:
        _print_json({"package": __version__, "code_sha": library.code_sha,
                     "schema_version": library.schema_version,
                     "deployed": None if info is None else info.__dict__})
        return
    print(f"package   agentfn {__version__}  code sha {library.code_sha[:12]}  schema {library.schema_version}")
    if info is None:
        print("deployed  (none)" if (args.url or os.environ.get("REDIS_URL")) else "deployed  (no --url given)")
    else:
        print(f"deployed  agentfn {info.library}  code sha {info.code_sha[:12]}  "
              f"namespace {args.namespace} schema {info.schema_version}")


def cmd_protocol(args: argparse.Namespace) -> None:
    if args.write:
        path = Path(args.write)
        print(f"{path}: {'updated' if protocol_doc.refresh(path) else 'up to date'}")
    else:
        sys.stdout.write(protocol_doc.render_reference())


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None,
                        help="Redis URL (default: $REDIS_URL, else a temporary embedded redis-server)")
    parser.add_argument("--namespace", default=os.environ.get("AGENTFN_NAMESPACE", "default"),
                        help="namespace (default: $AGENTFN_NAMESPACE, else 'default')")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


#: Extra subcommands registered by other modules: name -> (setup(parser), handler).
EXTRA_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], Any], str]] = {}

from . import ops_cli  # noqa: E402,F401  (registers status, top, events, task, workflow, dead-letters, demo)
from . import worker_cli  # noqa: E402,F401  (registers worker)
from .mcp_server import command as _mcp_command  # noqa: E402,F401  (registers mcp)
from .a2a import command as _a2a_command  # noqa: E402,F401  (registers a2a)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentfn", description="Coordinate AI agents through Redis Functions.")
    parser.add_argument("--version", action="version", version=f"agentfn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("render", help="print the complete Lua library (pipe it to FUNCTION LOAD)").set_defaults(
        handler=cmd_render)

    p = sub.add_parser("deploy", help="load the library if it changed, then migrate the namespace")
    _common(p)
    p.add_argument("--force", action="store_true", help="replace a newer deployed library")
    p.set_defaults(handler=cmd_deploy)

    p = sub.add_parser("migrate", help="apply pending data migrations to the namespace")
    _common(p)
    p.set_defaults(handler=cmd_migrate)

    p = sub.add_parser("version", help="package version vs the deployed library")
    _common(p)
    p.set_defaults(handler=cmd_version)

    p = sub.add_parser("protocol", help="print the generated function reference of docs/PROTOCOL.md")
    p.add_argument("--write", metavar="PATH", help="refresh the generated part of PATH in place")
    p.set_defaults(handler=cmd_protocol)

    for name, (setup, handler, help_text) in EXTRA_COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        setup(p)
        p.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (CliError, AgentfnError) as error:
        print(f"agentfn: {error}", file=sys.stderr)
        return 1
    except redis.RedisError as error:
        print(f"agentfn: redis: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `agentfn events --follow | head`: the reader went away; end quietly, without a traceback
        # from the interpreter's final flush of stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
