"""The agentfn command line: one parser over the command tables of the command modules.

Every failure is one line on stderr: exit status 2 for a command line that cannot work as
written (argparse's errors, a bad --url, --namespace or option value), 1 for everything else
(Redis down or refusing, the library not loaded, a library error). No traceback is printed
unless --log-level DEBUG.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import redis

from .. import keys
from ..client.routing import describe
from ..errors import AgentfnError, permission_denied
from ..urls import describe_redis_error, redact_text, redact_url, url_user
from ..version import __version__
from . import acl, bridges, cluster, library, ops, watch, worker
from .common import CliError, Command, UsageError, setup_logging
from .demo import command as demo

#: Every subcommand, in the order `agentfn --help` lists them.
COMMANDS: dict[str, Command] = {
    **library.COMMANDS,
    **ops.COMMANDS,
    **demo.COMMANDS,
    **worker.COMMANDS,
    **watch.COMMANDS,
    **bridges.COMMANDS,
    **cluster.COMMANDS,
    **acl.COMMANDS,
}

log = logging.getLogger("agentfn.cli")


class Parser(argparse.ArgumentParser):
    """argparse, reporting a usage error in one line (and where to read the usage) with status 2."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("agentfn").strip()
        line = f"agentfn: {where + ': ' if where else ''}{message} (see {self.prog} --help)"
        self.exit(2, redact_text(line) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="agentfn", description="Coordinate AI agents through Redis Functions.")
    parser.add_argument("--version", action="version", version=f"agentfn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    for name, (setup, handler, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        setup(p)
        p.set_defaults(handler=handler)
    return parser


def _report(error: BaseException, text: str, debug: bool) -> None:
    if debug:
        log.debug("traceback of the error below", exc_info=error)
    print(redact_text(f"agentfn: {text}"), file=sys.stderr)


def _shown_url(args: argparse.Namespace) -> str:
    """The Redis the command talked to (--url, else REDIS_URL), its password redacted."""
    return redact_url(str(getattr(args, "url", None) or os.environ.get("REDIS_URL") or "redis"))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = str(getattr(args, "log_level", "") or "").upper() == "DEBUG"
    if debug and not logging.getLogger().handlers:
        setup_logging("DEBUG", "%(levelname)s %(name)s: %(message)s")
    try:
        args.handler(args)
    except UsageError as error:
        _report(error, str(error), debug)
        return 2
    except (CliError, AgentfnError) as error:
        _report(error, str(error), debug)
        return 1
    except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.InvalidResponse) as error:
        # Lost (or refused) after the command had connected: said as at connect time.
        _report(error, describe_redis_error(error, _shown_url(args)), debug)
        return 1
    except redis.exceptions.NoPermissionError as error:  # an ACL user lacking a permission
        namespace = keys.resolve_namespace(getattr(args, "namespace", None))
        refusal = permission_denied(str(error), url_user(_shown_url(args)), None, namespace)
        _report(error, str(refusal or f"redis: {describe(error)}"), debug)
        return 1
    except redis.RedisError as error:
        _report(error, f"redis: {describe(error)}", debug)
        return 1
    except redis.exceptions.RedisClusterException as error:  # e.g. no node serves a slot now
        _report(error, f"redis cluster: {error}", debug)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `agentfn events --follow | head`: the reader went away; end quietly, without a traceback
        # from the interpreter's final flush of stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # noqa: BLE001 - a defect: still one line unless debugging
        hint = "" if debug else " (run with --log-level DEBUG for the traceback)"
        _report(error, f"unexpected error: {type(error).__name__}: {error}{hint}", debug)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
