"""`agentfn cluster move`: move a namespace to another primary of a Redis Cluster."""

from __future__ import annotations

import argparse

from ..client.routing import is_cluster
from .common import CliError, Command, add_common_arguments, connect, namespace_of, print_json
from .slots import MoveRefused, move_namespace


def cmd_cluster(args: argparse.Namespace) -> None:
    connection = connect(args.url)
    if not is_cluster(connection):
        raise CliError("--url names a server that is not part of a Redis Cluster")
    try:
        report = move_namespace(connection, namespace_of(args), args.to)
    except MoveRefused as error:
        raise CliError(f"move refused: {error}") from None
    if args.json:
        print_json(report.__dict__)
    else:
        print(report.summary())


def _setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["move"], help="move: the namespace's slot to --to")
    add_common_arguments(parser)
    parser.add_argument("--to", required=True, metavar="HOST:PORT", help="the target primary")


COMMANDS: dict[str, Command] = {
    "cluster": (_setup, cmd_cluster, "Redis Cluster: move a namespace to another primary"),
}
