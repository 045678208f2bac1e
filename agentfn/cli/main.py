"""The agentfn command line: one parser over the command tables of the command modules."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import redis

from ..errors import AgentfnError
from ..version import __version__
from . import acl, bridges, library, ops, watch, worker
from .common import CliError, Command
from .demo import command as demo

#: Every subcommand, in the order `agentfn --help` lists them.
COMMANDS: dict[str, Command] = {
    **library.COMMANDS,
    **ops.COMMANDS,
    **demo.COMMANDS,
    **worker.COMMANDS,
    **watch.COMMANDS,
    **bridges.COMMANDS,
    **acl.COMMANDS,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentfn", description="Coordinate AI agents through Redis Functions."
    )
    parser.add_argument("--version", action="version", version=f"agentfn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    for name, (setup, handler, help_text) in COMMANDS.items():
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
