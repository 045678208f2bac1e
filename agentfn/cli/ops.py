"""Operator commands: status, top, events, task show, workflow show, dead-letters.

Each takes --url (default $REDIS_URL, else a temporary embedded redis-server), --namespace
(default $AGENTFN_NAMESPACE, else 'default') and --json. They read the namespace's keys and
call the library's read functions; only ``dead-letters requeue`` (agentfn_task_requeue) writes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Literal

import redis
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from .. import keys
from ..client.blocking import xread_blocking
from ..client.client import Client
from ..client.formats import clock
from ..client.status import NamespaceStatus, read_status
from ..errors import LibraryNotReady
from ..library.deploy import deploy, deployed_library
from ..library.info import compatibility_problem
from ..replies import range_entries, xread_entries
from ..urls import redact_url
from .common import (
    Command,
    UsageError,
    add_common_arguments,
    connect,
    count_type,
    given_url,
    namespace_of,
    positive_seconds,
    print_json,
)
from .views import fields_line, make_console, status_view, task_view, workflow_view

#: Longest wait between two `agentfn top` refreshes when nothing happens (s).
TOP_MAX_INTERVAL = 2.0

#: Shortest time between two `agentfn top` refreshes, however busy the namespace is (s).
TOP_MIN_INTERVAL = 0.1

#: Longest single XREAD BLOCK of `agentfn events --follow` (ms); it then blocks again.
FOLLOW_BLOCK_MS = 5_000


@dataclass
class Session:
    """A connection to one namespace for one command."""

    redis: redis.Redis
    namespace: str
    temporary: bool
    """True when no Redis was named and the command runs on an empty embedded server."""
    wait_replicas: int = 0

    @property
    def client(self) -> Client:
        return Client(self.redis, self.namespace, wait_replicas=self.wait_replicas)


def open_session(
    args: argparse.Namespace, *, need_library: bool | Literal["warn"] = True
) -> Session:
    """Connect for a command; refuse (one line, with the command to run) when the library is not
    loaded or cannot serve this package and it is needed.

    On a temporary embedded server the library is deployed first, so that the command sees an
    empty namespace rather than an error. ``status`` passes need_library="warn": a namespace that
    was never migrated (a typo in --namespace?) is shown with a warning instead.
    """
    namespace = namespace_of(args)
    url = given_url(args.url)
    connection = connect(url)
    if url is None:
        deploy(connection, namespace)
    # On a cluster: the primary serving the namespace's slot (every key of it lives there).
    owner = Client(connection, namespace, check_library=False).redis
    if url is not None and need_library:
        problem = compatibility_problem(
            deployed_library(owner, namespace), namespace, redact_url(url)
        )
        if problem and need_library == "warn" and problem.startswith(f"namespace {namespace} "):
            print(f"agentfn: warning: {problem}", file=sys.stderr)
        elif problem:
            raise LibraryNotReady(problem)
    return Session(owner, namespace, url is None, getattr(args, "wait_replicas", 0))


def _plain(value: Any) -> Any:
    """A dataclass (or anything else) as JSON-ready data."""
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


# -- status and top ---------------------------------------------------------------------------


def _status_record(session: Session, status: NamespaceStatus) -> dict[str, Any]:
    return {**status.as_json(), "temporary": session.temporary}


def cmd_status(args: argparse.Namespace) -> None:
    session = open_session(args, need_library="warn")
    status = read_status(session.redis, session.namespace)
    if args.json:
        print_json(_status_record(session, status))
    else:
        make_console().print(status_view(status, temporary=session.temporary))


def _refreshes(session: Session, interval: float) -> Iterator[None]:
    """Yield once now, then after each burst of namespace events (at most every ``interval`` s).

    Blocks with XREAD on the namespace's event stream, never a sleep, from the newest id read
    before each redraw (so no event between the read and the block is missed): a change shows
    within TOP_MIN_INTERVAL, and a quiet namespace is redrawn every ``interval`` (deadlines move).
    """
    stream = keys.events(session.namespace)
    newest = range_entries(session.redis.xrevrange(stream, count=1))
    last_id = newest[0][0] if newest else "0-0"

    def wait(seconds: float) -> bool:
        """Block up to ``seconds`` (in chunks of FOLLOW_BLOCK_MS) for events after last_id."""
        nonlocal last_id
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            block = max(1, min(int(left * 1000), FOLLOW_BLOCK_MS))
            entries = xread_entries(xread_blocking(session.redis, {stream: last_id}, block, 1000))
            if entries:
                last_id = entries[-1][0]
                return True
        return False

    while True:
        yield
        if not wait(interval):
            continue
        settle = time.monotonic() + TOP_MIN_INTERVAL
        while (left := settle - time.monotonic()) > 0:
            wait(left)  # drain the burst


def cmd_top(args: argparse.Namespace) -> None:
    session = open_session(args)
    console = make_console()
    frames = 0
    live = (
        Live(console=console, auto_refresh=False, transient=False)
        if console.is_terminal and not args.json
        else None
    )
    try:
        if live is not None:
            live.start()
        for _ in _refreshes(session, args.interval):
            status = read_status(session.redis, session.namespace)
            if args.json:
                print(
                    json.dumps(_status_record(session, status), sort_keys=True, default=str),
                    flush=True,
                )
            elif live is not None:
                live.update(
                    Group(
                        status_view(status, temporary=session.temporary),
                        Text(f"refreshed {clock(status.server_ms)}; Ctrl-C to quit", style="dim"),
                    ),
                    refresh=True,
                )
            else:
                console.print(status_view(status, temporary=session.temporary))
                console.print()
            frames += 1
            if args.count is not None and frames >= args.count:
                return
    finally:
        if live is not None:
            live.stop()


# -- events -----------------------------------------------------------------------------------


def _event_record(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    return {"id": entry_id, "ms": int(entry_id.split("-")[0]), **fields}


def _print_event(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(record, sort_keys=True), flush=True)
    else:
        print(
            f"{clock(record['ms'])}  {record.get('type', '?'):<22} "
            f"{fields_line(record, skip=('id', 'ms', 'type'))}",
            flush=True,
        )


def cmd_events(args: argparse.Namespace) -> None:
    if args.count == 0 and not args.follow:
        raise UsageError("events --count 0 shows nothing: give --count 1 or more, or --follow")
    session = open_session(args, need_library=False)
    stream = keys.events(session.namespace)
    latest = range_entries(session.redis.xrevrange(stream, count=max(args.count, 1)))
    last_id = latest[0][0] if latest else "0-0"
    entries = list(reversed(latest[: args.count] if args.count else []))
    while True:
        for entry_id, fields in entries:
            last_id = entry_id
            record = _event_record(entry_id, fields)
            if record.get("type", "").startswith(args.type):
                _print_event(record, args.json)
        if not args.follow:
            return
        reply = xread_blocking(session.redis, {stream: last_id}, FOLLOW_BLOCK_MS, 100)
        entries = xread_entries(reply)


# -- task show, workflow show ---------------------------------------------------------------


def _show(
    read: Callable[[Client, str], Any], view: Callable[[Any], RenderableType]
) -> Callable[..., None]:
    """A `show ID` command: read one record through the client, print it as JSON or drawn."""

    def show(args: argparse.Namespace) -> None:
        record = read(open_session(args).client, args.id)
        if args.json:
            print_json(_plain(record))
        else:
            make_console().print(view(record))

    return show


cmd_task_show = _show(Client.get_task, task_view)
cmd_workflow_show = _show(Client.get_workflow, workflow_view)


# -- dead letters -----------------------------------------------------------------------------


def cmd_dead_letters_list(args: argparse.Namespace) -> None:
    session = open_session(args)
    entries = range_entries(
        session.redis.xrange(keys.dead_letters(session.namespace), count=args.count)
    )
    records = [_event_record(entry_id, fields) for entry_id, fields in entries]
    if args.json:
        print_json(records)
        return
    if not records:
        print(f"no dead letters in namespace {session.namespace}")
        return
    for record in records:
        print(f"{clock(record['ms'])}  {fields_line(record, skip=('id', 'ms', 'errors'))}")
    print(
        f"{len(records)} dead letter(s); requeue one with: agentfn dead-letters requeue <task id>"
    )


def cmd_dead_letters_requeue(args: argparse.Namespace) -> None:
    session = open_session(args)
    state = session.client.requeue(args.id, max_attempts=args.max_attempts)
    if args.json:
        print_json({"id": args.id, "state": state})
    else:
        print(f"{args.id}: {state}")


# -- registration -----------------------------------------------------------------------------

Handler = Callable[[argparse.Namespace], None]


def _actions(
    *actions: tuple[str, str, Callable[[argparse.ArgumentParser], None], Handler],
) -> Callable[[argparse.ArgumentParser], None]:
    """The setup of a command with sub-actions (``task show ID``): each gets the common options."""

    def setup(parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        for name, help_text, add_arguments, handler in actions:
            action = sub.add_parser(name, help=help_text)
            add_common_arguments(action)
            add_arguments(action)
            action.set_defaults(action_handler=handler)

    return setup


def _dispatch(args: argparse.Namespace) -> None:
    args.action_handler(args)


def _setup_status(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)


def _setup_top(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "--interval",
        type=positive_seconds,
        default=TOP_MAX_INTERVAL,
        help=f"redraw at least this often, in s (default {TOP_MAX_INTERVAL:g}); "
        "every change redraws at once",
    )
    parser.add_argument(
        "--count",
        type=count_type(1),
        default=None,
        help="stop after this many redraws (default: never)",
    )


def _setup_events(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "--count",
        type=count_type(0),
        default=20,
        help="show the last N events first (default 20; 0 with --follow: only new ones)",
    )
    parser.add_argument(
        "--follow", "-f", action="store_true", help="then wait for new events (Ctrl-C to stop)"
    )
    parser.add_argument(
        "--type", default="", help="only events whose type starts with this (task., agent. ...)"
    )


def _id_argument(what: str) -> Callable[[argparse.ArgumentParser], None]:
    def setup(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("id", help=f"the {what} id")

    return setup


def _setup_dead_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--count",
        type=count_type(1),
        default=100,
        help="at most N entries, oldest first (default 100)",
    )


def _setup_requeue(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="the dead task's id (as `dead-letters list` shows it)")
    parser.add_argument(
        "--max-attempts", type=count_type(1), default=None, help="give it this many attempts anew"
    )


COMMANDS: dict[str, Command] = {
    "status": (
        _setup_status,
        cmd_status,
        "the namespace at a glance: agents, queues, leases, dead letters",
    ),
    "top": (_setup_top, cmd_top, "status, redrawn on every change (XREAD on the event stream)"),
    "events": (
        _setup_events,
        cmd_events,
        "the namespace's event stream (--follow to keep reading)",
    ),
    "task": (
        _actions(
            (
                "show",
                "one task: state, attempts, timings, payload, result, errors",
                _id_argument("task"),
                cmd_task_show,
            )
        ),
        _dispatch,
        "inspect tasks",
    ),
    "workflow": (
        _actions(
            (
                "show",
                "one workflow: its steps as a tree, with states",
                _id_argument("workflow"),
                cmd_workflow_show,
            )
        ),
        _dispatch,
        "inspect workflows",
    ),
    "dead-letters": (
        _actions(
            ("list", "tasks that ran out of attempts", _setup_dead_list, cmd_dead_letters_list),
            (
                "requeue",
                "put a dead task back in its queue",
                _setup_requeue,
                cmd_dead_letters_requeue,
            ),
        ),
        _dispatch,
        "list or requeue dead tasks",
    ),
}
