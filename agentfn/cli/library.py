"""Commands on the library itself: render, deploy, migrate, version, protocol."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..library import protocol_doc
from ..library.deploy import deploy, deployed_library
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
    report = deploy(connect(args.url), namespace_of(args), force=args.force)
    if args.json:
        print_json(
            {
                "loaded": report.loaded,
                "version": report.version,
                "code_sha": report.code_sha,
                "migrations": [m.path.name for m in report.migrations],
            }
        )
    else:
        print(report.summary())


def cmd_migrate(args: argparse.Namespace) -> None:
    applied = migrate(connect(args.url), namespace_of(args))
    if args.json:
        print_json({"applied": [m.path.name for m in applied]})
    else:
        print("applied " + ", ".join(m.path.name for m in applied) if applied else "up to date")


def cmd_version(args: argparse.Namespace) -> None:
    library = render_library()
    namespace = namespace_of(args)
    url = given_url(args.url)
    info = deployed_library(connect(url), namespace) if url else None
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
