"""`agentfn acl`: least-privilege Redis ACL users for one namespace, derived from the code.

Four roles: admin (deploy, migrate), orchestrator (submit, workflows, wait), agent (serve,
messages) and observer (read-only views through FCALL_RO and XREAD). Each user gets the key
patterns ``~agentfn:{ns} ~agentfn:{ns}:*`` (read-only ``%R~`` for the observer), the channels
``&agentfn:{ns}:*`` and exactly the commands its role needs, derived from the code rather than
kept by hand:

- the Lua: which ``redis.call`` commands each registered function can run, read from the
  rendered library (a call graph of its named functions, followed transitively);
- the functions each role calls (ROLES below; the observer's are the no-writes functions);
- the Python side's own commands (XREAD, SUBSCRIBE, CLIENT UNBLOCK, EVAL for migrations...),
  read from the redis-py calls in the role's modules (PYTHON_COMMANDS maps method to command).

Every role also gets what redis-py's RedisCluster sends on its own (CLUSTER_CLIENT), so that the
same users work on a Redis Cluster, where ``--apply`` creates them on every node.

Redis checks ACLs on every command a function runs, but it cannot restrict FCALL to some
functions: a user allowed FCALL may call every function whose commands it holds. So the
orchestrator and the agent share the commands of every writing function (a role lacking one
of them could see a call of another role's function fail half-way, after a write); they differ
in the Python side's commands. See README "Roles" for what ACLs cannot stop.
"""

from __future__ import annotations

import argparse
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from .. import keys
from ..library.nodes import node_servers
from ..library.paths import migrations_dir
from ..library.protocol import load_specs
from ..library.render import render_library
from .common import (
    CliError,
    Command,
    add_common_arguments,
    connect,
    given_url,
    namespace_of,
    print_json,
)

PACKAGE = Path(__file__).resolve().parent.parent

#: The subcommands that are their own ACL unit (``+xgroup|create``): command -> position.
SUBCOMMANDS = {"XGROUP", "XINFO", "CLIENT", "FUNCTION", "CONFIG", "OBJECT", "CLUSTER"}

#: redis-py method -> ACL command, for the Python side's own calls.
PYTHON_COMMANDS = {
    "xread": "XREAD",
    "xrange": "XRANGE",
    "xrevrange": "XREVRANGE",
    "xlen": "XLEN",
    "xinfo_groups": "XINFO|GROUPS",
    "xpending": "XPENDING",
    "zcard": "ZCARD",
    "scard": "SCARD",
    "pexpire": "PEXPIRE",
    "hmget": "HMGET",
    "hget": "HGET",
    "zrange": "ZRANGE",
    "smembers": "SMEMBERS",
    "scan_iter": "SCAN",
    "subscribe": "SUBSCRIBE",
    "psubscribe": "PSUBSCRIBE",
    "client_id": "CLIENT|ID",
    "eval": "EVAL",
    "ping": "PING",
    "time": "TIME",
    "exists": "EXISTS",
    "info": "INFO",
}


#: What redis-py's RedisCluster (sync and asyncio) sends besides the commands it is given,
#: granted to every role: COMMAND when it starts (its table of key positions) and COMMAND GETKEYS
#: to route a command whose keys move (XREAD); CLUSTER SLOTS when it starts and after a MOVED
#: (CLUSTER SHARDS in other redis-py versions); ASKING before a command it sends after an ASK;
#: READONLY with reads from replicas. Harmless on a single server: they read the command table
#: or the cluster's topology, or set a mode of the connection.
CLUSTER_CLIENT = ("COMMAND", "CLUSTER|SLOTS", "CLUSTER|SHARDS", "ASKING", "READONLY")


@dataclass(frozen=True)
class Role:
    """What a role calls: functions (None: every function, or with writes False every no-writes
    function), its Python modules, and whether it writes (FCALL) or only reads (FCALL_RO)."""

    summary: str
    functions: frozenset[str] | None
    modules: tuple[str, ...]
    writes: bool = True


ROLES: dict[str, Role] = {
    "admin": Role(
        "deploy the library and migrate the namespace (FUNCTION LOAD is server-wide)",
        None,
        ("library/deploy.py", "library/nodes.py", "library/migrate.py", "client/status.py"),
    ),
    "orchestrator": Role(
        "submit tasks, run workflows, send messages, wait for results; mcp, a2a, dashboard actions",
        frozenset(
            "agentfn_" + name
            for name in [
                "agent_register",  # agentfn mcp: the server is an agent (its inbox) while it serves
                "agent_heartbeat",
                "agent_deregister",
                "task_submit",
                "task_submit_many",
                "task_get",
                "task_cancel",
                "task_requeue",
                "wf_create",
                "wf_get",
                "wf_cancel",
                "wf_signal",
                "ctx_get",
                "ctx_set",
                "msg_send",
                "msg_broadcast",
                "msg_read",
                "msg_ack",
                "agent_find",
                "version",
                "reap",
            ]
        ),
        ("client", "mcp", "a2a", "dashboard"),
    ),
    "agent": Role(
        "serve tasks with the Agent runtime, exchange messages",
        frozenset(
            "agentfn_" + name
            for name in [
                "agent_register",
                "agent_heartbeat",
                "agent_deregister",
                "agent_find",
                "task_claim",
                "task_complete",
                "task_complete_many",
                "task_fail",
                "task_extend",
                "task_get",
                "msg_read",
                "msg_ack",
                "msg_send",
                "msg_broadcast",
                "ctx_get",
                "ctx_set",
                "wf_get",
                "wf_signal",
                "reap",
                "version",
            ]
        ),
        ("agent", "client"),
    ),
    "observer": Role(
        "read-only views: status, events, dashboard, metrics, FCALL_RO of the no-writes functions",
        None,
        (
            "client/connect.py",
            "client/status.py",
            "client/waiting.py",
            "cli/ops.py",
            "cli/views.py",
            "dashboard",
        ),
        writes=False,
    ),
}

_DEFINITION = re.compile(r"^\s*(?:local\s+)?function\s+([A-Za-z_][\w.:]*)\s*\(", re.M)
#: ``redis.call('X', ...)``, or ``pcall(redis.call, 'X', ...)`` (a call whose error is handled).
_CALL = re.compile(r"redis\.call(?:\(|\s*,)\s*'([A-Z]+)'(?:\s*,\s*'([A-Z]+)')?")
_COMMENT = re.compile(r"(?m)(?:^|(?<=[ \t]))--[^\n]*")
_CHUNKED = re.compile(r"call_chunked\(\s*'([A-Z]+)'")


def _command(name: str, second: str | None) -> str:
    return f"{name}|{second}" if name in SUBCOMMANDS and second else name


def lua_commands(source: str) -> dict[str, set[str]]:
    """The Redis commands each registered function of the rendered library can run: the
    commands in its text and, transitively, in the text of the named functions it mentions."""
    registered = re.findall(r"function_name = '(agentfn_\w+)'", source)
    code = _COMMENT.sub("", source.split("\nredis.register_function{", 1)[0])
    starts = [(match.start(), match.group(1)) for match in _DEFINITION.finditer(code)]
    units: dict[str, str] = {}
    for index, (start, name) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(code)
        units[name] = units.get(name, "") + code[start:end]
    names = sorted(units, key=len, reverse=True)
    # A dotted name (TASK.enqueue) wherever it stands; a plain one (emit) called or passed on.
    dotted = "|".join(re.escape(name) for name in names if "." in name)
    plain = "|".join(re.escape(name) for name in names if "." not in name)
    mention = re.compile(rf"(?<![\w.])(?:({dotted})(?!\w)|({plain})(?=\s*[(,)}}]))")
    direct = {
        name: {_command(*call) for call in _CALL.findall(text)} | set(_CHUNKED.findall(text))
        for name, text in units.items()
    }
    calls = {
        name: {first or second for first, second in mention.findall(text)} - {name}
        for name, text in units.items()
    }
    result = {}
    for function in registered:
        seen, todo = {function}, [function]
        while todo:
            for callee in calls.get(todo.pop(), ()):
                if callee not in seen:
                    seen.add(callee)
                    todo.append(callee)
        result[function] = set().union(*(direct[name] for name in seen))
    return result


def python_commands(modules: tuple[str, ...]) -> set[str]:
    """The commands the Python modules (files or packages under agentfn/) send themselves."""
    found: set[str] = set()
    for module in modules:
        path = PACKAGE / module
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            text = file.read_text(encoding="utf-8")
            for method in re.findall(r"(?<!\btime)\.(\w+)\(", text):
                if method in PYTHON_COMMANDS:
                    found.add(PYTHON_COMMANDS[method])
            for first, second in re.findall(
                r'(?:execute_command|send_command|_ask_any_node)\((?:\s*\w+,)?\s*"([A-Z_]+)"'
                r'(?:,\s*"([A-Z]+)")?',
                text,
            ):
                found.add(_command(first, second))
            if re.search(r"\bxread_(?:blocking|args)\(", text):  # client/blocking.py's XREAD
                found.add("XREAD")
    return found


def migration_commands() -> set[str]:
    """The commands the migrations and migrate's own scripts run (through EVAL)."""
    texts = [path.read_text(encoding="utf-8") for path in sorted(migrations_dir().glob("*.lua"))]
    texts.append((PACKAGE / "library" / "migrate.py").read_text(encoding="utf-8"))
    return {_command(*call) for text in texts for call in _CALL.findall(text)}


def role_commands(role: str) -> list[str]:
    """The sorted ACL commands of a role."""
    spec = ROLES[role]
    by_function = lua_commands(render_library().source)
    commands = {"PING", *CLUSTER_CLIENT} | python_commands(spec.modules)
    if not spec.writes:
        read_only = [name for name, header in load_specs().items() if header.read_only]
        commands |= set().union(*(by_function[name] for name in read_only)) | {"FCALL_RO"}
    elif spec.functions is None:
        commands |= set().union(*by_function.values()) | migration_commands()
        commands |= {"FCALL", "FCALL_RO", "FUNCTION|LIST"}
    else:
        members = set().union(*(other.functions or () for other in ROLES.values() if other.writes))
        commands |= set().union(*(by_function[name] for name in members)) | {"FCALL", "FCALL_RO"}
    return sorted(command.lower() for command in commands)


def user_name(namespace: str, role: str) -> str:
    return f"agentfn-{namespace}-{role}"


def setuser_arguments(namespace: str, role: str, password: str | None) -> list[str]:
    """The ACL SETUSER arguments of a role's user (``>password`` only when given)."""
    root = keys.root(namespace)
    read = "%R" if not ROLES[role].writes else ""
    rules = ["reset", "on", f">{password}" if password else "><password>", "resetchannels"]
    rules += [f"{read}~{root}", f"{read}~{root}:*", f"&{root}:*", "-@all"]
    rules += [f"+{command}" for command in role_commands(role)]
    return [user_name(namespace, role), *rules]


def cmd_acl(args: argparse.Namespace) -> None:
    namespace = namespace_of(args)
    roles = [args.role] if args.role else list(ROLES)
    url = given_url(args.url)
    if args.apply and not url:
        # Users created on a temporary server would vanish with it, their passwords useless.
        raise CliError(
            "--apply needs your Redis (users of a temporary server would vanish with it): "
            "pass --url redis://host:port or set REDIS_URL"
        )
    # ACL users are not replicated: on a cluster, every node (primaries and replicas) gets them.
    servers = [server for _, _, server in node_servers(connect(url))] if args.apply else []
    created = {}
    for role in roles:
        password = secrets.token_urlsafe(32) if args.apply else None
        arguments = setuser_arguments(namespace, role, password)
        for server in servers:
            server.execute_command("ACL", "SETUSER", *arguments)
        if servers:
            created[arguments[0]] = password
        elif not args.json:
            print(f"# {role}: {ROLES[role].summary}")
            print("ACL SETUSER " + " ".join(arguments))
    if args.json:
        print_json(
            {
                role: {"user": user_name(namespace, role), "commands": role_commands(role)}
                for role in roles
            }
            | ({"passwords": created} if created else {})
        )
    elif created:
        where = f" on each of {len(servers)} nodes" if len(servers) > 1 else ""
        print(f"created{where} (the passwords are shown once, store them now):")
        for user, password in created.items():
            print(f"{user} {password}")


def setup_acl(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, "else none: only --apply connects, to create the users")
    parser.add_argument("--role", choices=list(ROLES), help="one role (default: all four)")
    parser.add_argument(
        "--apply",
        action="store_true",
        help="create the users (ACL SETUSER) and print their passwords once",
    )


COMMANDS: dict[str, Command] = {
    "acl": (
        setup_acl,
        cmd_acl,
        "print (or --apply: create) least-privilege ACL users of a namespace",
    ),
}
