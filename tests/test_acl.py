"""Least-privilege roles (agentfn acl): each role runs its whole part of the lifecycle with exactly
the commands derived from the code, and is refused the rest (FUNCTION LOAD, FLUSHALL, CONFIG,
another namespace, writes for the observer)."""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.commands.core import CoreCommands

import agentfn
from agentfn.cli import acl
from agentfn.cli.main import main
from agentfn.client.status import read_status
from agentfn.library.render import render_library

NAMESPACE = "acl"
ROOT = "agentfn:{acl}"
OTHER = "agentfn:{other}"


@pytest.fixture(scope="module")
def users(redis_proc) -> Iterator[dict[str, redis.Redis]]:
    """One decoded connection per role, as the users `agentfn acl --apply` creates."""
    admin = redis.Redis(host=redis_proc.host, port=redis_proc.port, decode_responses=True)
    admin.flushall()
    admin.function_flush()
    agentfn.deploy(admin, "other")
    connections = {}
    for role in acl.ROLES:
        password = secrets.token_urlsafe(16)
        admin.execute_command("ACL", "SETUSER", *acl.setuser_arguments(NAMESPACE, role, password))
        connections[role] = redis.Redis(
            host=redis_proc.host,
            port=redis_proc.port,
            username=acl.user_name(NAMESPACE, role),
            password=password,
            decode_responses=True,
        )
    yield connections
    for role, connection in connections.items():
        connection.close()
        admin.execute_command("ACL", "DELUSER", acl.user_name(NAMESPACE, role))
    admin.close()


def scrape(connection: redis.Redis) -> bytes:
    """The metrics page, as `agentfn metrics` serves it, read through this connection."""
    from agentfn.dashboard.metrics import exposition

    return exposition(connection, [NAMESPACE])()


def refused(connection: redis.Redis, *command: Any) -> str:
    with pytest.raises(redis.ResponseError) as info:
        connection.execute_command(*command)
    assert "NOPERM" in str(info.value) or "no permissions" in str(info.value), info.value
    return str(info.value)


def common_refusals(connection: redis.Redis) -> None:
    refused(connection, "FLUSHALL")
    refused(connection, "CONFIG", "GET", "maxmemory")
    refused(connection, "GET", OTHER + ":meta")
    refused(connection, "FCALL_RO", "agentfn_version", 1, OTHER)
    refused(connection, "KEYS", "*")


def test_lifecycle_under_each_role(
    users: dict[str, redis.Redis], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level("WARNING", logger="agentfn")
    died: list[str] = []  # a background thread ended by an exception (a NOPERM, say)
    monkeypatch.setattr(threading, "excepthook", lambda hook: died.append(repr(hook.exc_value)))
    # admin: deploy (FUNCTION LOAD) and migrate its namespace; nothing else of the server.
    admin = users["admin"]
    report = agentfn.deploy(admin, NAMESPACE)
    assert report.version == agentfn.__version__
    common_refusals(admin)
    refused(admin, "FUNCTION", "FLUSH")

    # agent: the Agent runtime (claim, wait, heartbeat, reap, messages) on its own connection.
    worker = agentfn.Agent(
        agentfn.Client(users["agent"], NAMESPACE), "acl-agent", heartbeat_interval_ms=100
    )

    @worker.handler("echo")
    def echo(task: agentfn.TaskContext) -> dict:
        return {"echo": task.payload}

    serving = worker.start()
    try:
        # observer: the status views and the metrics while an agent is live (its tasks: SCARD).
        observer = users["observer"]
        assert [agent.id for agent in read_status(observer, NAMESPACE).agents] == ["acl-agent"]
        assert b'agentfn_agent_live{agent="acl-agent"' in scrape(observer)
        # orchestrator: a workflow and a plain task, waited for; messages to the agent.
        orchestrator = agentfn.Client(users["orchestrator"], NAMESPACE)
        workflow_id = orchestrator.create_workflow(
            [{"id": "a", "capability": "echo", "input": {"n": 1}}]
        )
        info = orchestrator.wait_workflow(workflow_id, timeout=30)
        assert info.results["a"] == {"echo": {"n": 1}}
        orchestrator.send("orchestrator", "acl-agent", "note", {"hi": True})
        common_refusals(users["orchestrator"])
        refused(users["orchestrator"], "FUNCTION", "LOAD", "REPLACE", "#!lua name=x\n")
    finally:
        worker.stop()
        serving.join(timeout=30)
    problems = [record.getMessage() for record in caplog.records if record.levelname != "INFO"]
    assert not problems and not died, (problems, died)  # no NOPERM in any background thread
    agent = agentfn.Client(users["agent"], NAMESPACE)
    read = agent.read_inbox("acl-agent")
    assert [message.content for message in read.messages] == [{"hi": True}]
    agent.ack("acl-agent", *[message.id for message in read.messages])
    common_refusals(users["agent"])
    refused(users["agent"], "FUNCTION", "LOAD", "REPLACE", "#!lua name=x\n")

    # observer: status views and the no-writes functions; no FCALL, no write.
    status = read_status(observer, NAMESPACE)
    assert status.as_json()
    assert agentfn.Client(observer, NAMESPACE).get_task(info.step("a").task).state == "completed"
    refused(observer, "FCALL", "agentfn_task_submit", 1, ROOT, "echo", "{}")
    refused(observer, "HSET", ROOT + ":meta", "x", "1")
    refused(observer, "XADD", ROOT + ":events", "*", "type", "forged")
    common_refusals(observer)


def test_roles_are_derived_from_the_code() -> None:
    by_function = acl.lua_commands(render_library().source)
    # MGET: the schema check (and MOVING probe); HGET: its fallback to meta's schema_version
    assert by_function["agentfn_task_get"] == {"MGET", "HGET", "HMGET"}
    assert {"XADD", "HSET", "XGROUP|CREATE"} <= by_function["agentfn_task_submit"]
    observer = acl.role_commands("observer")
    assert "fcall" not in observer and "hset" not in observer and "fcall_ro" in observer
    assert {"xread", "client|unblock", "subscribe"} <= set(acl.role_commands("agent"))
    assert {"function|load", "eval"} <= set(acl.role_commands("admin"))
    assert "function|load" not in acl.role_commands("agent")


#: Methods of ordinary Python objects (dict, list, Event, logger) named like a redis-py command.
NOT_REDIS = {"get", "set", "append", "sort", "keys", "wait", "info", "watch", "execute_command"}


def test_every_redis_py_command_of_a_role_module_is_mapped() -> None:
    """A redis-py command method called in a role's modules but missing from PYTHON_COMMANDS
    would be missing from the role's ACL (an observer's status once lacked SCARD)."""
    commands = {name for name in dir(CoreCommands) if not name.startswith("_")}
    unmapped = set()
    for module in {module for role in acl.ROLES.values() for module in role.modules}:
        path = acl.PACKAGE / module
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            for method in re.findall(r"(?<!\btime)\.(\w+)\(", file.read_text(encoding="utf-8")):
                if method in commands and method not in acl.PYTHON_COMMANDS.keys() | NOT_REDIS:
                    unmapped.add(f"{module}: {method}")
    assert not unmapped


def test_cli_prints_rules_and_applies_users_once(
    redis_url: str, r: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["acl", "--namespace", "demo", "--role", "observer"]) == 0
    printed = capsys.readouterr().out
    assert "ACL SETUSER agentfn-demo-observer reset on ><password>" in printed
    assert "%R~agentfn:{demo}:*" in printed
    assert main(["acl", "--namespace", "demo", "--apply", "--json", "--url", redis_url]) == 0
    created = json.loads(capsys.readouterr().out)
    passwords = created["passwords"]
    assert sorted(passwords) == sorted(acl.user_name("demo", role) for role in acl.ROLES)
    user = acl.user_name("demo", "agent")
    authed = redis.Redis.from_url(redis_url, username=user, password=passwords[user])
    assert authed.ping()
    authed.close()
    assert set(r.acl_users()) >= set(passwords)
    for name in passwords:
        r.acl_deluser(name)


def test_cli_namespace_defaults_and_is_checked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTFN_NAMESPACE", raising=False)
    assert main(["acl", "--role", "observer"]) == 0
    assert "ACL SETUSER agentfn-default-observer " in capsys.readouterr().out
    monkeypatch.setenv("AGENTFN_NAMESPACE", "fromenv")
    assert main(["acl", "--role", "agent", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agent"]["user"] == "agentfn-fromenv-agent"
    assert main(["acl", "--namespace", "bad ns"]) == 2
    assert capsys.readouterr().err.startswith("agentfn: --namespace 'bad ns': ")


def test_apply_without_a_redis_refuses_instead_of_a_temporary_server(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Users (and printed passwords) of a server deleted on exit would be useless."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["acl", "--apply"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "--apply needs your Redis" in captured.err and "temporary" not in captured.out


def test_every_command_of_the_library_is_reached_by_some_function() -> None:
    """The call graph misses nothing: each redis.call of the library is reachable from a function."""
    source = render_library().source
    code = acl._COMMENT.sub("", source)
    literal = {acl._command(*call) for call in acl._CALL.findall(code)} | set(
        acl._CHUNKED.findall(code)
    )
    assert set().union(*acl.lua_commands(source).values()) == literal


def test_a_user_without_the_schema_read_is_told_so_not_moving(deployed, redis_proc):
    """A user made before an upgrade lacks a command the new library runs (here MGET, its
    schema check): the refusal names the ACL, it is not mistaken for a cluster move."""
    deployed.execute_command("ACL", "SETUSER", "stale", "on", ">stale-pw", "~*", "+fcall", "+hget")
    stale = redis.Redis(
        host=redis_proc.host, port=redis_proc.port, username="stale", password="stale-pw"
    )
    try:
        with pytest.raises(redis.ResponseError, match="can't run this command|NOPERM") as info:
            stale.execute_command("FCALL", "agentfn_task_get", 1, "agentfn:{default}", "t1")
        assert "MOVING" not in str(info.value)
    finally:
        stale.close()
        deployed.execute_command("ACL", "DELUSER", "stale")
