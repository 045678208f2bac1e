"""Least-privilege roles (agentfn acl): each role runs its whole part of the lifecycle with exactly
the commands derived from the code, and is refused the rest (FUNCTION LOAD, FLUSHALL, CONFIG,
another namespace, writes for the observer). Inside the namespace, one agent cannot act as another:
without its secret or its claim token, the library refuses with DENIED and changes nothing."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.commands.core import CoreCommands

import agentfn
from agentfn.cli import acl
from agentfn.cli.main import main
from agentfn.client.status import read_status
from agentfn.library.render import render_library

from .helpers import assert_refused, fcall, pairs

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
    # The runtime deregistered; its inbox stays. Only a registered agent, with its secret, reads
    # it: a new process of the agent registers (with a new secret: the id is no longer live).
    agent = agentfn.Client(users["agent"], NAMESPACE)
    agent.agent_register("acl-agent", [])
    read = agent.read_inbox("acl-agent")
    assert [message.content for message in read.messages] == [{"hi": True}]
    agent.ack("acl-agent", *[message.id for message in read.messages])
    agent.agent_deregister("acl-agent")
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
    for role in acl.ROLES:  # what a RedisCluster client sends; never a whole container command
        commands = set(acl.role_commands(role))
        assert {"cluster|slots", "cluster|shards", "command", "asking", "readonly"} <= commands
        assert {"info", "ping"} <= commands  # connect() detects a cluster with INFO
        assert not commands & {"cluster", "client", "function", "config", "xgroup"}, role
    assert "cluster|nodes" in acl.role_commands("admin")  # a deploy lists the cluster's nodes


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


#: What every ACL refusal says after naming what was refused.
POINTER = (
    ": `agentfn acl` prints the ACL rules of each role (admin, orchestrator, agent, observer); "
    "give this user the one it needs"
)


def test_a_refusal_names_the_permission_and_agentfn_acl(users: dict[str, redis.Redis]) -> None:
    """NOPERM reaching a Client, an AsyncClient or a Batch: PermissionDenied (still a redis-py
    NoPermissionError), one line naming the user, what it may not do and `agentfn acl`."""
    agentfn.deploy(users["admin"], NAMESPACE)
    observer = agentfn.Client(users["observer"], NAMESPACE)
    with pytest.raises(agentfn.PermissionDenied) as info:
        observer.submit("echo", {})
    expected = (
        "NOPERM Redis user 'agentfn-acl-observer' may not run FCALL (calling agentfn_task_submit)"
    )
    assert str(info.value) == expected + POINTER
    assert isinstance(info.value, redis.exceptions.NoPermissionError)
    with pytest.raises(agentfn.PermissionDenied) as info:
        agentfn.Client(users["orchestrator"], "other").get_task("t1")
    assert str(info.value) == (
        "NOPERM Redis user 'agentfn-acl-orchestrator' may not use the keys of namespace 'other' "
        "(calling agentfn_version)" + POINTER
    )
    batch = agentfn.Batch(observer)
    batch.submit("echo", {})
    [refusal] = batch.execute(raise_on_error=False)
    assert isinstance(refusal, agentfn.PermissionDenied) and str(refusal) == expected + POINTER

    async def submit_async() -> None:
        kwargs = users["observer"].connection_pool.connection_kwargs
        settings = {name: kwargs[name] for name in ("host", "port", "username", "password")}
        connection = redis.asyncio.Redis(**settings)
        try:
            await agentfn.AsyncClient(connection, NAMESPACE).submit("echo", {})
        finally:
            await connection.aclose()

    with pytest.raises(agentfn.PermissionDenied) as info:
        asyncio.run(submit_async())
    assert str(info.value) == expected + POINTER


def test_a_command_refused_inside_a_function(
    redis_proc, r: redis.Redis, users: dict[str, redis.Redis]
) -> None:
    """A hand-made user allowed FCALL but not every command the function runs: Redis 7.0 says
    only that the script's user may not run a command (the guard wraps it in INTERNAL), 7.2 and
    later name it."""
    agentfn.deploy(users["admin"], NAMESPACE)
    rules = ["on", ">secret", f"~{ROOT}", f"~{ROOT}:*", "&*", "-@all"]
    rules += ["+fcall", "+fcall_ro", "+hget", "+hmget", "+exists", "+time", "+ping"]
    r.execute_command("ACL", "SETUSER", "agentfn-acl-partial", *rules)
    partial = redis.Redis(
        host=redis_proc.host,
        port=redis_proc.port,
        username="agentfn-acl-partial",
        password="secret",
    )
    try:
        with pytest.raises(agentfn.PermissionDenied) as info:
            agentfn.Client(partial, NAMESPACE).submit("echo", {})
    finally:
        partial.close()
        r.acl_deluser("agentfn-acl-partial")
    assert re.fullmatch(
        r"NOPERM Redis user 'agentfn-acl-partial' may not run (one of the commands "
        r"agentfn_task_submit runs|[A-Z]+ \(calling agentfn_task_submit\))"
        + re.escape(POINTER)
        + r"( \(the call may be partly applied\))?",
        str(info.value),
    ), str(info.value)


def test_cli_reports_a_refusal_in_one_line(
    users: dict[str, redis.Redis], redis_proc, r: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CLI command refused by ACL: exit 1, one line on stderr, the password not in it."""
    password = users["observer"].connection_pool.connection_kwargs["password"]
    url = f"redis://agentfn-acl-observer:{password}@{redis_proc.host}:{redis_proc.port}"
    assert main(["deploy", "--url", url, "--namespace", NAMESPACE]) == 1  # `r`: none loaded
    deploy_error = capsys.readouterr().err
    assert main(["status", "--url", url, "--namespace", "other"]) == 1
    status_error = capsys.readouterr().err
    assert deploy_error == (
        "agentfn: NOPERM Redis user 'agentfn-acl-observer' may not run FUNCTION LOAD"
        + POINTER
        + "\n"
    )
    assert status_error == (
        "agentfn: NOPERM Redis user 'agentfn-acl-observer' may not use the keys of namespace "
        "'other'" + POINTER + "\n"
    )
    assert password not in deploy_error + status_error


def test_the_refusal_names_the_roles_there_are() -> None:
    assert f"({', '.join(acl.ROLES)})" in POINTER


def test_only_redis_refusals_become_permission_denied(client: agentfn.Client) -> None:
    """A library error that quotes such words (a duplicate JSON key, say) keeps its class."""
    from agentfn.client.client import _translate

    quoted = "this user has no permissions to run the 'fcall' command"
    error = redis.ResponseError(
        f'BADARG payload is not valid JSON: duplicate object key "{quoted}"'
    )
    assert type(_translate(error, client, "agentfn_task_submit")) is agentfn.BadArgument
    refusal = _translate(redis.exceptions.NoPermissionError(quoted), client, "agentfn_task_submit")
    assert type(refusal) is agentfn.PermissionDenied


def test_an_agent_cannot_act_as_another_agent(
    users: dict[str, redis.Redis], raw: redis.Redis
) -> None:
    """Agent B, with the same `agent` role as A, cannot settle or renew A's task (a forged token, or
    the token of a task B holds) nor read or ack A's inbox, heartbeat A, deregister A or take A's id
    (its own secret): DENIED, keyspace unchanged, and the refusal shows no secret or token."""
    agentfn.deploy(users["admin"], NAMESPACE)
    agent, orchestrator = users["agent"], users["orchestrator"]
    a_secret, b_secret = secrets.token_hex(16), secrets.token_hex(16)

    def call(connection: redis.Redis, function: str, *args: Any) -> Any:
        return fcall(connection, function, *args, keys=(ROOT,))

    def claim(agent_id: str, secret: str) -> dict[str, Any]:
        (task,) = pairs(call(agent, "agentfn_task_claim", agent_id, secret, "COUNT", 1))["tasks"]
        return pairs(task)

    call(agent, "agentfn_agent_register", "agent-a", a_secret, "echo", "TTL_MS", 60000)
    call(agent, "agentfn_agent_register", "agent-b", b_secret, "echo", "TTL_MS", 60000)
    task_a = pairs(call(orchestrator, "agentfn_task_submit", "echo", '{"for":"a"}'))["id"]
    held_by_a = claim("agent-a", a_secret)
    assert held_by_a["id"] == task_a
    task_b = pairs(call(orchestrator, "agentfn_task_submit", "echo", '{"for":"b"}'))["id"]
    held_by_b = claim("agent-b", b_secret)
    assert held_by_b["id"] == task_b and held_by_b["attempt"] == held_by_a["attempt"]
    message = pairs(call(orchestrator, "agentfn_msg_send", "app", "agent-a", "note", '{"n":1}'))[
        "id"
    ]

    attempt = held_by_a["attempt"]
    hidden = [a_secret, b_secret, held_by_a["token"], held_by_b["token"]]
    refusals: list[tuple[str, ...]] = []
    for token in (f"{attempt}-{secrets.token_hex(20)}", held_by_b["token"]):
        refusals += [
            ("agentfn_task_complete", task_a, token, '"B was here"'),
            ("agentfn_task_fail", task_a, token, "B was here"),
            ("agentfn_task_extend", task_a, token, "LEASE_MS", "60000"),
        ]
    refusals += [
        ("agentfn_msg_read", "agent-a", b_secret),
        ("agentfn_msg_read", "agent-a", b_secret, "ACK", message),
        ("agentfn_msg_ack", "agent-a", b_secret, message),
        ("agentfn_agent_heartbeat", "agent-a", b_secret),
        ("agentfn_agent_deregister", "agent-a", b_secret),
        ("agentfn_agent_register", "agent-a", b_secret, "echo"),
        ("agentfn_task_claim", "agent-a", b_secret),
    ]
    for function, *args in refusals:
        refusal = assert_refused(agent, raw, "DENIED", function, *args, keys=(ROOT,))
        assert not any(value in refusal for value in hidden), refusal

    # A, with its secret and its token, still does all of it.
    completed = call(agent, "agentfn_task_complete", task_a, held_by_a["token"], '"by A"')
    assert pairs(completed)["state"] == "completed"
    inbox = pairs(call(agent, "agentfn_msg_read", "agent-a", a_secret))
    assert [pairs(item)["id"] for item in inbox["messages"]] == [message]
    assert pairs(call(agent, "agentfn_msg_ack", "agent-a", a_secret, message))["removed"] == 1
    for agent_id, secret in (("agent-a", a_secret), ("agent-b", b_secret)):
        call(agent, "agentfn_agent_deregister", agent_id, secret)
