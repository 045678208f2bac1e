"""Every class of mistake a new user makes, through the real CLI (a subprocess) against real
servers: one line on stderr saying what is wrong and what to run, exit status 1 (2 for a
command line that cannot work as written), no traceback, no password on screen."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis

from agentfn import keys
from agentfn.server import free_port
from agentfn.urls import URL_FORM

from . import agent_fixtures
from .agent_fixtures import spawn_worker
from .servers import acl_user, not_redis_server, redis_server

PASSWORD = "s3cret-pw"


def agentfn(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m agentfn <args>`` from the repository root, with REDIS_URL and
    AGENTFN_NAMESPACE unset unless ``env`` sets them."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("REDIS_URL", "AGENTFN_NAMESPACE")
    }
    return subprocess.run(
        [sys.executable, "-m", "agentfn", *args],
        cwd=agent_fixtures.REPO,
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_error(
    done: subprocess.CompletedProcess[str], first_line: str, status: int | None
) -> None:
    """The command failed with ``status`` (None: any failure), its stderr's first line is
    ``first_line``, and it printed no traceback and no password."""
    lines = done.stderr.splitlines()
    assert lines and lines[0] == first_line, done.stderr
    assert done.returncode == status if status is not None else done.returncode != 0
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stderr + done.stdout


@pytest.fixture(scope="module")
def password_port() -> Iterator[int]:
    with redis_server("--requirepass", PASSWORD) as port:
        yield port


@pytest.fixture(scope="module")
def other_port() -> Iterator[int]:
    with not_redis_server() as port:
        yield port


# -- the URL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, problem",
    [
        ("localhost:7411", "it has no scheme"),
        ("http://localhost:7411", "its scheme 'http' is not redis, rediss or unix"),
        (
            "redis://localhost:port",
            "it cannot be parsed (Port could not be cast to integer value as 'port')",
        ),
        ("redis://localhost:6379/zero", "its database 'zero' is not a number"),
    ],
)
def test_a_malformed_url_is_a_usage_error(url, problem):
    assert_error(
        agentfn("status", "--url", url),
        f"agentfn: --url {url!r} is not a Redis URL: {problem}; expected {URL_FORM}",
        2,
    )


def test_a_bad_redis_url_variable_is_named_as_such():
    done = agentfn("status", env={"REDIS_URL": f"http://:{PASSWORD}@localhost:7411"})
    assert_error(
        done,
        "agentfn: REDIS_URL 'http://:***@localhost:7411' is not a Redis URL: its scheme 'http' "
        f"is not redis, rediss or unix; expected {URL_FORM}",
        2,
    )


@pytest.mark.parametrize(
    "server, url, line",
    [
        (
            "down",
            f"redis://:{PASSWORD}@127.0.0.1:{{port}}",
            "cannot reach Redis at redis://:***@127.0.0.1:{port}: connection refused "
            "(is redis-server running there?)",
        ),
        (
            "not redis",
            "redis://127.0.0.1:{port}",
            "the server at redis://127.0.0.1:{port} does not speak the Redis protocol "
            "(is the port right?)",
        ),
        (
            "password",
            "redis://127.0.0.1:{port}",
            "Redis at redis://127.0.0.1:{port} requires a password: put it in the URL, "
            "--url redis://[user]:<password>@host:port",
        ),
        (
            "password",
            f"redis://:wrong-{PASSWORD}@127.0.0.1:{{port}}",
            "Redis at redis://:***@127.0.0.1:{port} refused the user or password in the URL "
            "(invalid username-password pair or user is disabled)",
        ),
    ],
)
def test_a_server_that_cannot_serve_is_named_without_its_password(server, url, line, request):
    port = {
        "down": free_port,
        "not redis": lambda: request.getfixturevalue("other_port"),
        "password": lambda: request.getfixturevalue("password_port"),
    }[server]()
    for command in (["status"], ["deploy"]):
        done = agentfn(*command, "--url", url.format(port=port))
        assert_error(done, "agentfn: " + line.format(port=port), 1)


def test_no_library_names_the_deploy_command_with_the_redacted_url(password_port):
    url = f"redis://:***@127.0.0.1:{password_port}"
    assert_error(
        agentfn("task", "show", "t1", "--url", f"redis://:{PASSWORD}@127.0.0.1:{password_port}"),
        f"agentfn: the agentfn library is not deployed on {url}; run: agentfn deploy --url "
        f"{url} --namespace default",
        1,
    )


# -- namespaces ---------------------------------------------------------------------------


def test_a_wrong_namespace_names_the_migrate_command(redis_url, deployed):
    expected = (
        "agentfn: namespace typo was never migrated (is its name right?); to use it, "
        f"run: agentfn migrate --url {redis_url} --namespace typo"
    )
    assert_error(
        agentfn("dead-letters", "list", "--url", redis_url, "--namespace", "typo"), expected, 1
    )
    # AGENTFN_NAMESPACE is the same rule as --namespace
    assert_error(
        agentfn("task", "show", "t1", env={"REDIS_URL": redis_url, "AGENTFN_NAMESPACE": "typo"}),
        expected,
        1,
    )


def test_status_on_an_unmigrated_namespace_warns_and_shows_it(redis_url, deployed):
    done = agentfn("status", "--url", redis_url, "--namespace", "typo", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "agentfn: warning: namespace typo was never migrated (is its name right?); to use it, "
        f"run: agentfn migrate --url {redis_url} --namespace typo"
    ]
    assert json.loads(done.stdout)["namespace"] == "typo"


def test_a_namespace_that_cannot_be_a_key(redis_url, deployed):
    assert_error(
        agentfn("events", "--url", redis_url, "--namespace", "a b"),
        "agentfn: --namespace 'a b': namespace may contain only letters, digits, '_', '.' and '-'",
        2,
    )


# -- option values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ["worker", "x:y", "--log-level", "LOUD"],
            "agentfn: worker: argument --log-level: 'LOUD' is not a log level: choose DEBUG, "
            "INFO, WARNING, ERROR (see agentfn worker --help)",
        ),
        (
            ["top", "--count", "0"],
            "agentfn: top: argument --count: 0 is less than 1 (see agentfn top --help)",
        ),
        (
            ["top", "--interval", "0"],
            "agentfn: top: argument --interval: 0 is not a duration above 0 s (see agentfn top --help)",
        ),
        (
            ["events", "--count", "-5"],
            "agentfn: events: argument --count: -5 is less than 0 (see agentfn events --help)",
        ),
        (
            ["dead-letters", "list", "--count", "-1"],
            "agentfn: dead-letters list: argument --count: -1 is less than 1 "
            "(see agentfn dead-letters list --help)",
        ),
        (
            ["dead-letters", "list", "--count", "many"],
            "agentfn: dead-letters list: argument --count: 'many' is not a whole number "
            "(see agentfn dead-letters list --help)",
        ),
        (
            ["render", "--url", f"redis://:{PASSWORD}@localhost:6379"],
            "agentfn: unrecognized arguments: --url redis://:***@localhost:6379 "
            "(see agentfn --help)",
        ),
        (
            ["demo", "--timeout", "-1"],
            "agentfn: demo: argument --timeout: -1 is not a duration above 0 s "
            "(see agentfn demo --help)",
        ),
    ],
)
def test_a_bad_option_value_is_one_usage_line(args, line):
    assert_error(agentfn(*args), line, 2)


def test_an_unknown_command():
    done = agentfn("no-such-command")
    assert_error(done, done.stderr.splitlines()[0], 2)
    assert done.stderr.startswith(
        "agentfn: argument command: invalid choice: 'no-such-command' (choose from "
    )
    assert done.stderr.endswith(" (see agentfn --help)\n")


def test_events_count_zero_needs_follow():
    assert_error(
        agentfn("events", "--count", "0"),
        "agentfn: events --count 0 shows nothing: give --count 1 or more, or --follow",
        2,
    )


# -- agentfn worker -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "target, line",
    [
        (
            "examples.agents:research",
            "agentfn: examples.agents:research is a handler of agent researcher, not an agent: "
            "run: agentfn worker examples.agents:researcher",
        ),
        (
            "agentfn:Agent",
            "agentfn: agentfn:Agent is the Agent class: name an agent, module:variable, made "
            "with agentfn.Agent(...) (or a function taking a Client and returning one)",
        ),
        (
            "tests.agent_fixtures:idle",
            "agentfn: agent tests.agent_fixtures:idle has no handlers: decorate functions with "
            "@agent.handler('capability') or @agent.on_message('type')",
        ),
        (
            "tests.agent_fixtures:broken_factory",
            "agentfn: tests.agent_fixtures:broken_factory(client) failed: KeyError: 'MODEL'",
        ),
    ],
)
def test_worker_names_what_is_wrong_with_its_target(target, line, redis_url, deployed):
    assert_error(
        agentfn("worker", target, "--url", redis_url), line, 2 if "failed" not in line else 1
    )


def test_a_worker_whose_agent_cannot_recover_deregisters_and_exits_1(redis_proc, deployed):
    with acl_user(deployed, "no-xread", "+@all", "-xread"):
        url = f"redis://no-xread:{PASSWORD}@{redis_proc.host}:{redis_proc.port}"
        deployed.execute_command("ACL", "SETUSER", "no-xread", f">{PASSWORD}")
        done = agentfn("worker", "tests.agent_fixtures:plain", "--url", url)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "agentfn: agent plain-agent stopped: NoPermissionError: this user has no permissions "
        "to run the 'xread' command"
    )
    assert "waiting for work failed 5 times in a row" in done.stderr
    assert PASSWORD not in done.stderr
    assert deployed.exists(keys.agent("default", "plain-agent")) == 0  # deregistered


def test_worker_gives_up_waiting_for_redis_after_its_bound():
    port = free_port()
    done = agentfn(
        "worker",
        "tests.agent_fixtures:plain",
        "--url",
        f"redis://127.0.0.1:{port}",
        "--wait-for-redis",
        "0.3",
    )
    assert done.returncode == 1
    *waits, last = done.stderr.splitlines()
    assert waits and all("trying again in" in line for line in waits)
    assert last == (
        f"agentfn: cannot reach Redis at redis://127.0.0.1:{port}: connection refused "
        "(is redis-server running there?); gave up after --wait-for-redis 0.3 s"
    )
    assert "Traceback" not in done.stderr


def test_worker_waits_for_redis_then_serves(tmp_path):
    """Started during an outage, the worker logs and waits; once Redis is up (with the library,
    from its RDB file) it serves. Ctrl-C then stops it with status 0."""
    with redis_server("--dir", str(tmp_path)) as before:
        assert agentfn("deploy", "--url", f"redis://127.0.0.1:{before}").returncode == 0
        saved = redis.Redis(port=before)
        saved.save()
        saved.close()
    port = free_port()
    worker = spawn_worker(
        f"redis://127.0.0.1:{port}", "tests.agent_fixtures:plain", "--log-level", "INFO"
    )
    try:
        assert worker.stderr is not None
        assert "trying again in" in worker.stderr.readline()
        with redis_server("--port", str(port), "--dir", str(tmp_path)):
            while "serving echo" not in (line := worker.stderr.readline()):
                assert line, "the worker exited before serving"
            worker.send_signal(signal.SIGINT)
            assert worker.wait(timeout=20) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=10)


def test_worker_interrupted_while_waiting_for_redis_exits_0():
    worker = spawn_worker(f"redis://127.0.0.1:{free_port()}", "tests.agent_fixtures:plain")
    assert worker.stderr is not None
    assert "trying again in" in worker.stderr.readline()
    worker.send_signal(signal.SIGTERM)
    _, rest = worker.communicate(timeout=20)
    assert worker.returncode == 0, rest
    assert "Traceback" not in rest


# -- the commands that work ----------------------------------------------------------------


def test_protocol_json_lists_every_function():
    done = agentfn("protocol", "--json")
    assert done.returncode == 0, done.stderr
    functions = {spec["name"]: spec for spec in json.loads(done.stdout)["functions"]}
    assert functions["agentfn_task_claim"]["read_only"] is False
    assert functions["agentfn_version"]["read_only"] is True


def test_debug_log_level_shows_the_traceback():
    done = agentfn("status", "--url", f"redis://127.0.0.1:{free_port()}", "--log-level", "DEBUG")
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("agentfn: cannot reach Redis at")


# -- the README's list ----------------------------------------------------------------------

README = (agent_fixtures.REPO / "README.md").read_text(encoding="utf-8")
MISTAKES = README.partition("\n## When something goes wrong\n")[2].partition("\n## ")[0]
#: ($ command, the first line it prints) of the console block of that section.
README_CASES = re.findall(r"^\$ (.+)\n(agentfn: .+)$", MISTAKES, flags=re.M)


def test_the_readme_lists_the_common_mistakes():
    assert len(README_CASES) >= 12


def test_each_mistake_in_the_readme_gets_the_line_it_shows(redis_proc, deployed, other_port):
    """Run every command of "When something goes wrong" against the servers it names."""
    with redis_server() as bare, redis_server("--requirepass", "secret") as locked:
        ports = {6379: redis_proc.port, 6380: bare, 6381: free_port(), 6382: locked}
        ports[8080] = other_port

        def here(text: str) -> str:
            return re.sub(r"localhost:(\d+)", lambda m: f"127.0.0.1:{ports[int(m[1])]}", text)

        for command, line in README_CASES:
            words = shlex.split(here(command))
            env = dict(word.split("=", 1) for word in words if re.match(r"^[A-Z_]+=", word))
            program, *args = words[len(env) :]
            assert program == "agentfn", command
            assert_error(agentfn(*args, env=env), here(line), None)


def test_redis_lost_while_a_command_follows_is_one_line():
    with redis_server() as port:
        with redis.Redis(port=port) as seed:
            seed.xadd(keys.events("default"), {"type": "test.seed"})
        follower = subprocess.Popen(
            [sys.executable, "-m", "agentfn", "events", "--follow", "--json"]
            + ["--url", f"redis://:{PASSWORD}@127.0.0.1:{port}"],
            cwd=agent_fixtures.REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert follower.stdout is not None
        # the seeded event printed: it now blocks in XREAD (or is about to) when Redis goes
        assert json.loads(follower.stdout.readline())["type"] == "test.seed"
    _, stderr = follower.communicate(timeout=30)
    assert follower.returncode == 1
    assert stderr.splitlines()[-1].startswith(
        f"agentfn: cannot reach Redis at redis://:***@127.0.0.1:{port}: "
    )
    assert "Traceback" not in stderr and PASSWORD not in stderr
