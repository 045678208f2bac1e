"""`agentfn worker module:attr`: serve an Agent from the command line until SIGTERM/SIGINT.

``attr`` names an :class:`agentfn.Agent` (created with ``client=None``, or with a client of its
own that --url replaces), or a callable that takes the :class:`agentfn.Client` the command
built from --url/--namespace and returns an Agent. The current directory is importable, as
with ``python -m``.

    agentfn worker myapp.agents:researcher --url redis://localhost:6379 --concurrency 8

At start it waits for Redis while the server cannot be reached (up to --wait-for-redis
seconds, with backoff and one log line per attempt): a worker started (or restarted) during an
outage serves once Redis is back. A password or protocol problem, or a library that is not
loaded, ends it at once with one line saying what to do. SIGINT and SIGTERM stop it
gracefully with exit status 0, whenever they come; an agent whose runtime fails exits with 1.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import signal
import sys
import time
from types import ModuleType
from typing import Any

import redis

from ..agent.agent import Agent
from ..client.client import Client
from ..client.connect import connect as agentfn_connect
from ..urls import redact_url
from .common import (
    CliError,
    Command,
    UsageError,
    add_durability_argument,
    add_log_level_argument,
    add_namespace_argument,
    add_url_argument,
    given_url,
    namespace_of,
    positive_seconds,
    redis_error_text,
    setup_logging,
)

log = logging.getLogger("agentfn.worker")

_NO_REDIS = "no Redis to talk to: pass --url redis://host:port or set REDIS_URL"

#: Default of --wait-for-redis (s).
DEFAULT_WAIT_FOR_REDIS_S = 60.0

#: Longest pause between two attempts to reach Redis at start (s).
MAX_CONNECT_PAUSE_S = 5.0


def _handler_owner(module: ModuleType, value: object) -> str | None:
    """The name of the Agent in ``module`` that has ``value`` as a handler, if any."""
    for name, candidate in vars(module).items():
        if isinstance(candidate, Agent):
            handlers = [*candidate.task_handlers.values(), *candidate.message_handlers.values()]
            if any(handler.function is value for handler in handlers):
                return name
    return None


def _build(target: str, factory: Any, client: Client) -> object:
    """Call an agent factory with the client, refusing one that cannot take it."""
    try:
        inspect.signature(factory).bind(client)
    except TypeError:
        raise UsageError(
            f"{target} is neither an agentfn.Agent nor a callable taking a Client"
        ) from None
    except ValueError:  # no signature to inspect (a builtin): just call it
        pass
    try:
        return factory(client)
    except Exception as error:  # noqa: BLE001 - the factory is user code: one line, with its error
        log.debug("the factory %s failed", target, exc_info=True)
        raise CliError(f"{target}(client) failed: {type(error).__name__}: {error}") from None


def load_agent(target: str, client: Client | None) -> Agent:
    """Import ``module:attr`` (attr may be dotted) and return the Agent it names or builds."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise UsageError(
            f"expected module:attribute (e.g. myapp.agents:researcher), got {target!r}"
        )
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"cannot import {module_name}: {error}") from None
    value: object = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise UsageError(f"{module_name} has no attribute {attr}") from None
    owner = _handler_owner(module, value)
    if owner is not None:
        raise UsageError(
            f"{target} is a handler of agent {owner}, not an agent: "
            f"run: agentfn worker {module_name}:{owner}"
        )
    if value is Agent:
        raise UsageError(
            f"{target} is the Agent class: name an agent, module:variable, made with "
            "agentfn.Agent(...) (or a function taking a Client and returning one)"
        )
    if not isinstance(value, Agent) and callable(value) and not isinstance(value, type):
        if client is None:
            raise CliError(_NO_REDIS)
        value = _build(target, value, client)
    if not isinstance(value, Agent):
        raise UsageError(f"{target} is neither an agentfn.Agent nor a callable returning one")
    if not value.task_handlers and not value.message_handlers:
        raise UsageError(
            f"agent {target} has no handlers: decorate functions with "
            "@agent.handler('capability') or @agent.on_message('type')"
        )
    return value


def wait_for_redis(url: str, wait_s: float) -> Any:
    """A connection to ``url`` (agentfn.connect: a server, a cluster or a Sentinel's primary)
    once it answers PING: while it cannot be reached (refused, down, loading, a cluster not
    ready) try again with backoff for up to ``wait_s`` seconds; any other refusal at once."""
    shown = redact_url(url)
    deadline = time.monotonic() + wait_s
    pause = 0.1
    while True:
        try:
            connection = agentfn_connect(url, decode_responses=True)
            connection.ping()
            return connection
        except (redis.AuthenticationError, redis.exceptions.InvalidResponse) as error:
            raise CliError(redis_error_text(error, shown)) from None
        except ValueError as error:
            raise UsageError(f"--url {shown!r} is not a Redis URL: {error}") from None
        except (
            redis.ConnectionError,
            redis.TimeoutError,
            redis.BusyLoadingError,
            redis.exceptions.ClusterDownError,
            redis.exceptions.RedisClusterException,
        ) as error:
            problem = redis_error_text(error, shown)
            left = deadline - time.monotonic()
            if left <= 0:
                raise CliError(f"{problem}; gave up after --wait-for-redis {wait_s:g} s") from None
            pause = min(pause * 2, MAX_CONNECT_PAUSE_S, left)
            log.warning("%s; trying again in %.1f s (for up to %.1f s more)", problem, pause, left)
            time.sleep(pause)
        except redis.RedisError as error:
            raise CliError(redis_error_text(error, shown)) from None


def _setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", help="module:attribute: an Agent, or a callable taking a Client and returning one"
    )
    add_url_argument(parser, "else the agent's own client")
    add_namespace_argument(parser)
    add_log_level_argument(parser, "INFO")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="tasks run at once (default: the agent's)",
    )
    parser.add_argument("--agent-id", default=None, help="agent id (default: the agent's)")
    parser.add_argument(
        "--wait-for-redis",
        type=positive_seconds,
        default=DEFAULT_WAIT_FOR_REDIS_S,
        metavar="SECONDS",
        help="at start, wait this long for an unreachable Redis "
        f"(default {DEFAULT_WAIT_FOR_REDIS_S:g})",
    )
    add_durability_argument(parser)


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def cmd_worker(args: argparse.Namespace) -> None:
    setup_logging(args.log_level, "%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    namespace = namespace_of(args)
    url = given_url(args.url)
    # Outside agent.run() (which stops gracefully on SIGTERM and SIGINT, then puts this handler
    # back), SIGTERM is a Ctrl-C: either way the worker ends with status 0.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        _serve(args, url, namespace)
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve(args: argparse.Namespace, url: str | None, namespace: str) -> None:
    client = None
    if url:
        connection = wait_for_redis(url, args.wait_for_redis)
        client = Client(connection, namespace, wait_replicas=args.wait_replicas)
    agent = load_agent(args.target, client)
    if client is not None:
        agent.bind(client)
    elif agent.client is None:
        raise CliError(_NO_REDIS)
    assert agent.client is not None
    if isinstance(agent.client, Client):
        agent.client.check_library()  # one line naming the command to run, before serving
    if args.concurrency is not None:
        agent.concurrency = args.concurrency
    if args.agent_id:
        agent.agent_id = args.agent_id
    try:
        agent.run()
    except (CliError, redis.RedisError, OSError, RuntimeError) as error:
        raise CliError(f"agent {agent.agent_id} stopped: {type(error).__name__}: {error}") from None


COMMANDS: dict[str, Command] = {
    "worker": (_setup, cmd_worker, "serve an agent's handlers (module:attr) until SIGTERM/SIGINT"),
}
