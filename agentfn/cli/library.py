"""Commands on the library itself: render, deploy, migrate, version, protocol."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import redis

from ..client.client import Client
from ..library import protocol_doc
from ..library.deploy import check_nodes, deploy, deployed_library
from ..library.migrate import migrate
from ..library.release import write_release
from ..library.render import render_library
from ..version import __version__
from .common import (
    CliError,
    Command,
    add_common_arguments,
    connect,
    given_url,
    namespace_of,
    print_json,
)


def cmd_render(args: argparse.Namespace) -> None:
    if args.release:
        changed = write_release(Path(args.release))
        print(f"{args.release}: " + (f"updated {', '.join(changed)}" if changed else "up to date"))
    else:
        sys.stdout.write(render_library().source)


def _setup_render(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--release",
        metavar="DIR",
        help="write the release files (library, migrations, runner scripts) to DIR instead",
    )


def cmd_deploy(args: argparse.Namespace) -> None:
    if args.check:
        _check_deploy(connect(args.url), args.json)
        return
    report = deploy(connect(args.url), namespace_of(args), force=args.force)
    if args.json:
        print_json(
            {
                "loaded": report.loaded,
                "version": report.version,
                "code_sha": report.code_sha,
                "migrations": [m.path.name for m in report.migrations],
                "nodes": [node.__dict__ for node in report.nodes],
            }
        )
    else:
        print(report.summary())


def _check_deploy(connection: object, as_json: bool) -> None:
    """Load nothing: one line per node; CliError naming every node lacking the exact library."""
    library = render_library()
    nodes = check_nodes(connection, library)
    if as_json:
        print_json([{**node.__dict__, "ok": node.matches(library)} for node in nodes])
    else:
        for node in nodes:
            print(node.line(library.code_sha))
    wrong = [node for node in nodes if not node.matches(library)]
    if wrong:
        raise CliError(
            f"agentfn {library.version} (code sha {library.code_sha[:12]}) is not on: "
            + ", ".join(
                f"{node.address} ({'missing' if node.version is None else 'differs'})"
                for node in wrong
            )
        )


def _owner(connection: Any, namespace: str) -> redis.Redis:
    """The server holding ``namespace``: the connection itself, or its cluster slot's primary."""
    owner: redis.Redis = Client(connection, namespace, check_library=False).redis
    return owner


def cmd_migrate(args: argparse.Namespace) -> None:
    namespace = namespace_of(args)
    applied = migrate(_owner(connect(args.url), namespace), namespace)
    if args.json:
        print_json({"applied": [m.path.name for m in applied]})
    else:
        print("applied " + ", ".join(m.path.name for m in applied) if applied else "up to date")


def cmd_version(args: argparse.Namespace) -> None:
    library = render_library()
    namespace = namespace_of(args)
    url = given_url(args.url)
    info = deployed_library(_owner(connect(url), namespace), namespace) if url else None
    if args.json:
        print_json(
            {
                "package": __version__,
                "code_sha": library.code_sha,
                "schema_version": library.schema_version,
                "deployed": None if info is None else info.__dict__,
            }
        )
        return
    print(
        f"package   agentfn {__version__}  code sha {library.code_sha[:12]}  schema {library.schema_version}"
    )
    if info is None:
        print("deployed  (none)" if url else "deployed  (no --url given)")
    else:
        print(
            f"deployed  agentfn {info.library}  code sha {info.code_sha[:12]}  "
            f"namespace {namespace} schema {info.schema_version}"
        )


def cmd_protocol(args: argparse.Namespace) -> None:
    if args.write:
        path = Path(args.write)
        if not path.is_file():
            raise CliError(f"--write {args.write}: no such file (it refreshes docs/PROTOCOL.md)")
        updated = protocol_doc.refresh(path)
        if args.json:
            print_json({"path": str(path), "updated": updated})
        else:
            print(f"{path}: {'updated' if updated else 'up to date'}")
    elif args.json:
        print_json(protocol_doc.reference_json())
    else:
        sys.stdout.write(protocol_doc.render_reference())


def _setup_deploy(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--force", action="store_true", help="replace a newer deployed library")
    parser.add_argument(
        "--check",
        action="store_true",
        help="load nothing: exit 1 naming each node without the exact library",
    )


def _setup_protocol(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--write", metavar="PATH", help="refresh the generated part of PATH in place"
    )
    parser.add_argument(
        "--json", action="store_true", help="the function reference as JSON (from the Lua headers)"
    )


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


COMMANDS: dict[str, Command] = {
    "render": (
        _setup_render,
        cmd_render,
        "print the complete Lua library (pipe it to FUNCTION LOAD)",
    ),
    "deploy": (
        _setup_deploy,
        cmd_deploy,
        "load the library if it changed, then migrate the namespace",
    ),
    "migrate": (
        add_common_arguments,
        cmd_migrate,
        "apply pending data migrations to the namespace",
    ),
    "version": (add_common_arguments, cmd_version, "package version vs the deployed library"),
    "protocol": (
        _setup_protocol,
        cmd_protocol,
        "print the generated function reference of docs/PROTOCOL.md",
    ),
}
