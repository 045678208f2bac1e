"""What every command module shares: the errors a command reports, the connection, the common options."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import redis

from .. import keys
from ..client.connect import connect as agentfn_connect
from ..client.routing import describe
from ..errors import permission_denied
from ..server import temporary_server_url
from ..urls import URL_FORM, describe_redis_error, redact_url, url_problem, url_user

#: One subcommand: setup(parser) adds its arguments, handler(args) runs it, and its help line.
Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], Any], str]


class CliError(Exception):
    """A failure reported as one line on stderr with exit code 1."""


class UsageError(CliError):
    """A command line that cannot work as written (a bad option value): exit code 2."""


def given_url(url: str | None) -> str | None:
    """--url, else $REDIS_URL, else None; refuses (UsageError) one that is not a Redis URL."""
    source = "--url"
    if not url and os.environ.get("REDIS_URL"):
        url, source = os.environ["REDIS_URL"], "REDIS_URL"
    if not url:
        return None
    problem = url_problem(url)
    if problem:
        raise UsageError(
            f"{source} {redact_url(url)!r} is not a Redis URL: {problem}; expected {URL_FORM}"
        )
    return url


def redis_error_text(error: BaseException, shown_url: str) -> str:
    """A Redis error met talking to ``shown_url`` (redacted) in words: an unreachable or refusing
    server as describe_redis_error says it; a cluster's (MOVED, CLUSTERDOWN...) named; an ACL
    refusal as what the URL's user may not do, pointing at `agentfn acl`."""
    if isinstance(error, redis.exceptions.NoPermissionError):
        refusal = permission_denied(str(error), url_user(shown_url))
        if refusal is not None:
            return str(refusal)
    if isinstance(error, redis.ResponseError) and not isinstance(
        error, redis.exceptions.AuthenticationError
    ):
        return f"{shown_url}: {describe(error)}"
    if isinstance(error, redis.exceptions.RedisClusterException):
        return f"{shown_url}: {error}"
    return describe_redis_error(error, shown_url)


def connect(url: str | None, *, check: bool = True) -> Any:
    """A connection for --url, else REDIS_URL, else a temporary embedded redis-server
    (agentfn.connect: a redis.Redis, a RedisCluster when the URL names a cluster node, or a
    Sentinel's primary); with ``check``, a PING first. A server that cannot be reached or
    refuses is one CliError line, its URL redacted."""
    url = given_url(url) or temporary_server_url()
    try:
        client = agentfn_connect(url, decode_responses=True)
        if check:
            client.ping()
    except ValueError as error:
        raise UsageError(f"--url {redact_url(url)!r} is not a Redis URL: {error}") from None
    except (redis.RedisError, redis.exceptions.RedisClusterException) as error:
        raise CliError(redis_error_text(error, redact_url(url))) from None
    return client


def namespace_of(args: argparse.Namespace) -> str:
    """The command's namespace (--namespace, else $AGENTFN_NAMESPACE, else default), checked."""
    namespace = keys.resolve_namespace(args.namespace)
    try:
        return keys.validate_namespace(namespace)
    except ValueError as error:
        raise UsageError(f"--namespace {namespace!r}: {error}") from None


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def count_type(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is less than {minimum}")
        return value

    return parse


#: The values of --log-level.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def log_level(text: str) -> str:
    """An argparse type: a logging level name, any case."""
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a log level: choose {', '.join(LOG_LEVELS)}"
        )
    return text.upper()


#: Libraries that log every HTTP request (httpx at INFO: "HTTP Request: POST ...", for each call
#: of a RemoteAgent or an MCP/A2A client; httpcore at DEBUG): shown only at --log-level DEBUG.
HTTP_LOGGERS = ("httpx", "httpcore")


def setup_logging(level: str, log_format: str | None = None) -> None:
    """agentfn's logging for a command: the root logger at ``level`` (logging.basicConfig, so
    nothing changes when the root has handlers already), the HTTP_LOGGERS at WARNING unless
    ``level`` is DEBUG."""
    logging.basicConfig(level=level, format=log_format or logging.BASIC_FORMAT)
    if level != "DEBUG":
        for name in HTTP_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def positive_seconds(text: str) -> float:
    """An argparse type: a duration in seconds, more than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a duration above 0 s")
    return value


def add_url_argument(
    parser: argparse.ArgumentParser, default: str = "else a temporary embedded redis-server"
) -> None:
    """--url: the Redis to use (``default`` says what is used when neither it nor $REDIS_URL is
    given)."""
    parser.add_argument(
        "--url", default=None, help=f"Redis URL ({URL_FORM}; default: $REDIS_URL, {default})"
    )


def add_namespace_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace",
        default=None,
        help="namespace (default: $AGENTFN_NAMESPACE, else 'default')",
    )


def add_log_level_argument(parser: argparse.ArgumentParser, default: str = "WARNING") -> None:
    """--log-level (DEBUG also shows the traceback of an error)."""
    parser.add_argument(
        "--log-level",
        type=log_level,
        default=default,
        help=f"logging level: {', '.join(LOG_LEVELS)} (default {default}); "
        "DEBUG also prints the traceback of an error",
    )


def add_common_arguments(
    parser: argparse.ArgumentParser, url_default: str = "else a temporary embedded redis-server"
) -> None:
    add_url_argument(parser, url_default)
    add_namespace_argument(parser)
    add_log_level_argument(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_durability_argument(parser)


def add_durability_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait-replicas",
        type=count_type(0),
        default=int(os.environ.get("AGENTFN_WAIT_REPLICAS", "0")),
        metavar="N",
        help="each write waits until N replicas acknowledged it (WAIT), else fails "
        "(default: $AGENTFN_WAIT_REPLICAS, else 0)",
    )


def listen(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port), so the printed address is the real one:
    a client that reads it can connect at once (the kernel queues it until the server accepts)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def address(sock: socket.socket) -> str:
    """``http://host:port`` of a listening socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def missing_extra(extra: str, error: ImportError) -> CliError:
    """The error of a command whose optional dependency is not installed, naming the extra."""
    return CliError(
        f"this command needs the {extra} extra ({error.name} is missing): "
        f"pip install 'agentfn[{extra}]'"
    )
