"""Cross-language contract: the whole lifecycle from redis-cli and from Node.js, without Python.

tests/crosslang/lifecycle.sh (redis-cli only) and tests/crosslang/lifecycle.mjs (the npm `redis`
client) load the library that `agentfn render` prints, initialise a namespace, and run every
transition with plain FCALL; the Python client then checks the state they left. Every FCALL
they send is recorded with MONITOR and checked against the function headers (the protocol), and
the scripts' source is checked the same way. A mixed workflow runs one step on a Python agent and
one on the Node.js example agent (examples/node/agent.mjs). The peers make their agent secret with
their platform's CSPRNG, never print it, and show the refusals of protocol 3.0: a wrong secret and
a forged token are DENIED, an attempt number alone is not a token (BADARG).

Node.js is required, not optional: `make test` installs it from Debian's packages
(scripts/system-deps.sh --node) and these tests fail, with the command to run, when it is missing.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import agentfn
from agentfn import keys
from agentfn.library.protocol import FunctionSpec, agent_functions, load_specs

CHECKOUT = Path(__file__).resolve().parent.parent
CROSSLANG = CHECKOUT / "tests" / "crosslang"
NODE_EXAMPLE = CHECKOUT / "examples" / "node"
SCRIPTS = {
    "sh": CROSSLANG / "lifecycle.sh",
    "node": CROSSLANG / "lifecycle.mjs",
}
#: The oldest Node.js the npm `redis` client (6.x, in the package.json files) runs on.
NODE_MAJOR = 20
NODE_MISSING = (
    "{tool} is not installed, and the cross-language tests need it: run `make test` "
    "(it installs Debian's nodejs and npm through scripts/system-deps.sh --node), "
    "or install them yourself (apt-get install nodejs npm)"
)


def require_tool(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(NODE_MISSING.format(tool=tool), pytrace=False)
    return path


def install_node_project(project: Path) -> None:
    """`npm ci` a Node.js project when its node_modules is missing or older than its lock file."""
    installed = project / "node_modules" / ".package-lock.json"
    if (
        installed.exists()
        and installed.stat().st_mtime >= (project / "package-lock.json").stat().st_mtime
    ):
        return
    done = subprocess.run(
        [require_tool("npm"), "ci", "--no-audit", "--no-fund"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"npm ci in {project} failed:\n{done.stdout}\n{done.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def node() -> str:
    """The node executable, with the dependencies of tests/crosslang and examples/node installed."""
    path = require_tool("node")
    version = subprocess.run(
        [path, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < NODE_MAJOR:
        pytest.fail(
            f"node {version} is too old: the npm `redis` client 6 needs Node.js {NODE_MAJOR} or newer",
            pytrace=False,
        )
    for project in (CROSSLANG, NODE_EXAMPLE):
        install_node_project(project)
    return path


@pytest.fixture(scope="session")
def library_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `agentfn render` prints, in a file, as a user of another language would receive it."""
    path = tmp_path_factory.mktemp("crosslang") / "agentfn.lua"
    render = subprocess.run(
        [sys.executable, "-m", "agentfn", "render"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    path.write_text(render.stdout)
    return path


# --- Every FCALL sent follows the headers --------------------------------------------------------

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|.)")
_ESCAPED = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b"}


def _unescape(text: str) -> str:
    """One argument as MONITOR quotes it (sdscatrepr) back to its text."""

    def one(match: re.Match[str]) -> str:
        code = match[1]
        return chr(int(code[1:], 16)) if len(code) == 3 else _ESCAPED.get(code, code)

    return _ESCAPE.sub(one, text)


class CallRecorder:
    """The FCALL/FCALL_RO commands the server runs while recording, read from MONITOR.

    MONITOR output waits in the server's output buffer until it is read; ``stop`` sends a
    sentinel ECHO and reads up to it, so every command sent before ``stop`` is seen.
    """

    def __init__(self, redis_proc: Any) -> None:
        self._connection = redis.Connection(
            host=redis_proc.host, port=redis_proc.port, decode_responses=True, socket_timeout=30
        )
        self._connection.send_command("MONITOR")
        assert self._connection.read_response() == "OK"
        self._client = redis.Redis(
            host=redis_proc.host, port=redis_proc.port, decode_responses=True
        )

    def stop(self) -> list[list[str]]:
        sentinel = "crosslang-recorder-stop"
        self._client.echo(sentinel)
        calls = []
        while True:
            line = self._connection.read_response()
            args = [_unescape(arg) for arg in _QUOTED.findall(line.split("] ", 1)[1])]
            if len(args) == 2 and args[0].upper() == "ECHO" and args[1] == sentinel:
                break
            if args and args[0].upper() in ("FCALL", "FCALL_RO"):
                calls.append([args[0].upper(), *args[1:]])
        self.close()
        return calls

    def close(self) -> None:
        self._connection.disconnect()
        self._client.close()


@pytest.fixture
def recorder(redis_proc, r) -> Iterator[CallRecorder]:
    recording = CallRecorder(redis_proc)
    yield recording
    recording.close()


def check_calls_against_headers(
    calls: list[list[str]], specs: dict[str, FunctionSpec] | None = None
) -> set[str]:
    """Each call names a declared function with one key, its positional values and declared options.

    Returns the names of the functions called.
    """
    specs = specs or load_specs()
    for command, name, numkeys, *args in calls:
        spec = specs.get(name)
        assert spec is not None, f"{command} {name}: no lua/functions header declares {name}"
        assert command == "FCALL" or spec.read_only, (
            f"FCALL_RO {name}: {name} is not flagged no-writes"
        )
        assert numkeys == "1", (
            f"{name}: called with {numkeys} keys, the protocol has one (the root)"
        )
        positional = len(spec.argv)
        if spec.item_args:  # a count, then that many items
            assert args[1].isdigit(), f"{name} {args[1:]}: its first value is a count"
            positional = 1 + int(args[1]) * spec.item_args
        options = args[1 + positional :]
        assert len(args) > positional and len(options) % 2 == 0, (
            f"{name} {args[1:]}: the header declares {len(spec.argv)} positional values "
            f"({', '.join(p.name for p in spec.argv)}) followed by NAME value pairs"
        )
        undeclared = {option.upper() for option in options[::2]} - spec.option_names
        assert not undeclared, f"{name}: option(s) {sorted(undeclared)} not declared in its header"
    return {call[1] for call in calls}


# The scripts call the library through helpers: fcall/fcall_ro (bash) and, in JavaScript, any
# function whose first argument is the function name (fcallReadOnly for FCALL_RO); option
# names are upper-case words.
_SH_CALL = re.compile(r"\bfcall(_ro)? (agentfn_\w+)((?:[^\n]*\\\n)*[^\n]*)")
_JS_CALL = re.compile(r"\b(\w+)\(\s*'(agentfn_\w+)'")
_SH_OPTION = re.compile(r"(?<![\w$])([A-Z][A-Z0-9_]+)(?!\w)")
_JS_OPTION = re.compile(r"'([A-Z][A-Z0-9_]+)'")


def _js_arguments(source: str, start: int) -> str:
    """The text of a call's argument list, from just after its name up to the closing parenthesis."""
    depth = 1
    for index in range(start, len(source)):
        depth += {"(": 1, ")": -1}.get(source[index], 0)
        if depth == 0:
            return source[start:index]
    raise AssertionError(f"unbalanced call at offset {start}")


def calls_in_source(path: Path) -> list[tuple[bool, str, set[str]]]:
    """(read-only helper used, function name, option words) for each library call in a script."""
    source = path.read_text()
    if path.suffix == ".sh":
        return [
            (bool(m[1]), m[2], set(_SH_OPTION.findall(m[3]))) for m in _SH_CALL.finditer(source)
        ]
    return [
        (m[1] == "fcallReadOnly", m[2], set(_JS_OPTION.findall(_js_arguments(source, m.end()))))
        for m in _JS_CALL.finditer(source)
    ]


def check_source_against_headers(
    path: Path, specs: dict[str, FunctionSpec] | None = None
) -> set[str]:
    """Every call in the script uses a declared function and only its declared options."""
    specs = specs or load_specs()
    calls = calls_in_source(path)
    assert calls, f"{path.name}: found no fcall(...) of a library function"
    for read_only, name, options in calls:
        spec = specs.get(name)
        assert spec is not None, (
            f"{path.name}: calls {name}, which no lua/functions header declares"
        )
        assert spec.read_only or not read_only, (
            f"{path.name}: FCALL_RO {name}, which is not no-writes"
        )
        assert options <= spec.option_names, (
            f"{path.name}: {name} with option(s) {sorted(options - spec.option_names)} that its header "
            f"does not declare (declared: {sorted(spec.option_names)})"
        )
    mentioned = set(re.findall(r"\bagentfn_[a-z_]+", path.read_text()))
    assert mentioned <= set(specs), (
        f"{path.name} names undeclared functions {sorted(mentioned - set(specs))}"
    )
    return {name for _, name, _ in calls}


# --- The lifecycle, driven without Python, checked with Python -----------------------------------

#: The functions each lifecycle script must go through: every function of the library, so that
#: the scripts stay a complete example for other languages.
LIFECYCLE_FUNCTIONS = set(load_specs())


def uncovered(script: str, functions: set[str]) -> str:
    return (
        f"{script} never calls {', '.join(sorted(functions))}: the cross-language examples cover every "
        "function; add a step to tests/crosslang/lifecycle.sh and lifecycle.mjs"
    )


def run_script(
    command: list[str], redis_url: str, namespace: str, timeout: float = 120
) -> tuple[dict[str, str], str]:
    """Run a script that talks to Redis: the name=value lines it printed on stdout, and all it printed."""
    env = {**os.environ, "REDIS_URL": redis_url, "AGENTFN_NAMESPACE": namespace}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(map(str, command))} exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    made = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return made, done.stdout + done.stderr


def lifecycle_command(
    language: str, request: pytest.FixtureRequest, library_file: Path
) -> list[str]:
    if language == "sh":
        return [require_tool("bash"), str(SCRIPTS["sh"]), str(library_file)]
    return [request.getfixturevalue("node"), str(SCRIPTS["node"]), str(library_file)]


# --- The scripts follow the headers (no server needed) -------------------------------------------

CALLERS = [SCRIPTS["sh"], SCRIPTS["node"], NODE_EXAMPLE / "agent.mjs"]


@pytest.mark.parametrize("script", CALLERS, ids=lambda path: path.name)
def test_script_calls_only_declared_functions_and_options(script):
    used = check_source_against_headers(script)
    if script in SCRIPTS.values():
        assert used >= LIFECYCLE_FUNCTIONS, uncovered(script.name, LIFECYCLE_FUNCTIONS - used)


def test_a_header_change_the_scripts_do_not_follow_fails(tmp_path):
    """Rename an option in a copy of the headers: the check of the scripts must then fail."""
    lua = tmp_path / "lua"
    shutil.copytree(CHECKOUT / "lua", lua)
    header = lua / "functions" / "agentfn_agent_register.lua"
    header.write_text(
        header.read_text().replace("-- OPTION TTL_MS ms:", "-- OPTION LIVENESS_MS ms:")
    )
    changed = load_specs(lua)
    assert "TTL_MS" not in changed["agentfn_agent_register"].option_names
    for script in CALLERS:
        with pytest.raises(AssertionError, match="TTL_MS"):
            check_source_against_headers(script, changed)
    removed = {name: spec for name, spec in load_specs().items() if name != "agentfn_msg_ack"}
    with pytest.raises(AssertionError, match="agentfn_msg_ack"):
        check_source_against_headers(SCRIPTS["sh"], removed)


def test_recorded_calls_are_checked_against_the_headers():
    root = "agentfn:{default}"
    secret = "s" * 32
    check_calls_against_headers(
        [["FCALL", "agentfn_agent_register", "1", root, "a1", secret, "x", "TTL_MS", "5"]]
    )
    check_calls_against_headers([["FCALL_RO", "agentfn_version", "1", root]])
    for bad, why in [
        (["FCALL", "agentfn_agent_register", "1", root, "a1", secret], "positional"),
        (["FCALL", "agentfn_agent_register", "1", root, "a1", "x", "TTL_MS", "5"], "positional"),
        (["FCALL", "agentfn_agent_register", "1", root, "a1", secret, "x", "TTL_MS"], "positional"),
        (
            ["FCALL", "agentfn_agent_register", "1", root, "a1", secret, "x", "COLOR", "blue"],
            "COLOR",
        ),
        (["FCALL", "agentfn_agent_nothing", "1", root], "no lua/functions header"),
        (["FCALL_RO", "agentfn_agent_register", "1", root, "a1", secret, "x"], "no-writes"),
        (["FCALL", "agentfn_version", "2", root, root], "one"),
    ]:
        with pytest.raises(AssertionError, match=why):
            check_calls_against_headers([bad])


def verify_lifecycle(r: redis.Redis, namespace: str, made: dict[str, str]) -> None:
    """The state a lifecycle script left, read with the Python client."""
    client = agentfn.Client(r, namespace)
    agent = made["agent"]
    assert client.agent_find("*") == [] and not r.exists(
        keys.agent(namespace, agent)
    )  # deregistered

    done = client.get_task(made["task_completed"])
    assert (done.state, done.result, done.attempt, done.agent) == (
        "completed",
        {"echo": "hello"},
        1,
        agent,
    )
    assert done.payload == {"text": "hello"} and done.errors == []
    retried = client.get_task(made["task_retried"])
    assert (retried.state, retried.result, retried.attempt) == ("completed", {"echo": "flaky"}, 2)
    assert retried.traceparent == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert [(e["attempt"], e["error"], e["agent"]) for e in retried.errors] == [
        (1, "upstream timed out", agent)
    ]
    requeued = client.get_task(made["task_requeued"])
    assert (requeued.state, requeued.result, requeued.attempt) == (
        "completed",
        {"echo": "doomed"},
        2,
    )
    assert [e["error"] for e in requeued.errors] == ["bad gateway"]
    assert r.xlen(keys.dead_letters(namespace)) == 0
    assert client.get_task(made["task_canceled"]).state == "canceled"

    workflow = client.get_workflow(made["workflow"])
    assert workflow.state == "completed" and workflow.remaining == 0
    assert workflow.results == {
        step: {"text": f"{step} done"} for step in ("fetch", "summarize", "publish")
    }
    for step in workflow.steps:
        task = client.get_task(step.task)
        assert (task.workflow, task.step, task.agent, task.state) == (
            workflow.id,
            step.id,
            agent,
            "completed",
        )
    publish = workflow.step("publish")
    assert (publish.signal, publish.attempts) == ({"approved": True}, 2)
    assert client.get_task(publish.task).inputs == {
        "summarize": {"text": "summarize done"},
        "_signal": {"approved": True},
    }
    context = client.ctx_get(workflow.id)
    assert (context.document, context.version) == ({"topic": "redis", "summary": "ready"}, 1)
    canceled = client.get_workflow(made["workflow_canceled"])
    assert (
        canceled.state == "canceled"
        and client.get_task(canceled.step("fetch").task).state == "canceled"
    )

    assert r.xlen(keys.inbox(namespace, agent)) == 0  # all read and acknowledged

    events = [fields for _, fields in r.xrange(keys.events(namespace))]
    kinds = {fields["type"] for fields in events}
    assert {
        "agent.registered",
        "task.submitted",
        "task.running",
        "task.completed",
        "task.queued",
        "task.dead",
        "task.canceled",
        "workflow.created",
        "step.completed",
        "context.updated",
        "step.signaled",
        "workflow.completed",
        "workflow.canceled",
        "message.sent",
        "message.broadcast",
        "agent.deregistered",
    } <= kinds, kinds

    def subjects(kind: str) -> list[str]:
        return [
            event[event_field]
            for event in events
            if event["type"] == kind
            for event_field in ("task", "workflow")
            if event_field in event
        ]

    assert subjects("task.running").count(made["task_retried"]) == 2
    assert made["task_retried"] in subjects("task.queued")
    assert subjects("task.dead") == [made["task_requeued"]]
    assert made["workflow"] in subjects("workflow.completed")


#: The functions that take the agent's secret right after its id (protocol 3.0).
AS_AGENT = agent_functions()
#: The functions that take a task's claim token right after its id.
WITH_TOKEN = {"agentfn_task_complete", "agentfn_task_fail", "agentfn_task_extend"}
SECRET = re.compile(r"[0-9a-f]{32}")  # 16 bytes of the platform's CSPRNG, as hex
TOKEN = re.compile(r"(\d+)-[0-9a-f]{40}")


def agent_secret(calls: list[list[str]], agent: str) -> str:
    """The secret an agent registered with (the first register of its id), checked for its form."""
    secret = next(
        call[5] for call in calls if call[1] == "agentfn_agent_register" and call[4] == agent
    )
    assert SECRET.fullmatch(secret), "the peers' secrets are 16 random bytes as hex"
    return secret


def refusals_tried(calls: list[list[str]], agent: str, secret: str) -> set[str]:
    """Which of protocol 3.0's refusals the recorded calls tried (a script asserts each outcome)."""
    tried = set()
    tokens: dict[tuple[str, str], set[str]] = {}
    for _, name, _, _, *args in calls:
        if name in AS_AGENT and args[0] == agent and args[1] != secret:
            tried.add(f"{name} with a wrong secret")
        if name in WITH_TOKEN:
            task, token = args[0], args[1]
            if token.isdigit():
                tried.add("an attempt number as the token")
            elif match := TOKEN.fullmatch(token):
                tokens.setdefault((task, match[1]), set()).add(token)
    if any(len(seen) > 1 for seen in tokens.values()):
        tried.add("another token for the same attempt")
    return tried


@pytest.mark.parametrize("language", ["sh", "node"])
def test_lifecycle_without_python(language, request, r, redis_url, recorder, library_file):
    namespace = f"crosslang-{language}"
    made, printed = run_script(
        lifecycle_command(language, request, library_file), redis_url, namespace
    )
    calls = recorder.stop()
    used = check_calls_against_headers(calls)
    assert used >= LIFECYCLE_FUNCTIONS, uncovered(
        SCRIPTS[language].name, LIFECYCLE_FUNCTIONS - used
    )
    assert {call[3] for call in calls} == {f"agentfn:{{{namespace}}}"}
    verify_lifecycle(r, namespace, made)
    secret = agent_secret(calls, made["agent"])
    assert secret not in printed, f"{SCRIPTS[language].name} printed the agent's secret"
    assert refusals_tried(calls, made["agent"], secret) >= {
        "agentfn_agent_heartbeat with a wrong secret",
        "agentfn_agent_register with a wrong secret",
        "agentfn_msg_read with a wrong secret",
        "agentfn_agent_deregister with a wrong secret",
        "an attempt number as the token",
        "another token for the same attempt",
    }


# --- One workflow, two languages -----------------------------------------------------------------


class NodeAgent:
    """examples/node/agent.mjs in a subprocess; the JSON lines it prints arrive on a queue."""

    def __init__(
        self, node: str, redis_url: str, namespace: str, agent_id: str, capability: str
    ) -> None:
        env = {**os.environ, "REDIS_URL": redis_url, "AGENTFN_NAMESPACE": namespace}
        self.process = subprocess.Popen(
            [node, str(NODE_EXAMPLE / "agent.mjs"), "--id", agent_id, "--capability", capability],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.put(json.loads(line))
        self.events.put(None)

    def expect(self, event: str, timeout: float = 30) -> dict[str, Any]:
        """The next line reporting ``event`` (earlier lines of other events are skipped)."""
        while True:
            try:
                line = self.events.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"the Node.js agent did not report {event!r} within {timeout} s")
            if line is None:
                assert self.process.stderr is not None
                pytest.fail(
                    f"the Node.js agent exited ({self.process.wait()}) before {event!r}:\n"
                    f"{self.process.stderr.read()}"
                )
            if line["event"] == event:
                return line

    def stop(self) -> int:
        """SIGTERM: the agent deregisters and exits; returns its exit code."""
        self.process.terminate()
        self.expect("stopped")
        return self.process.wait(timeout=30)

    def exited(self) -> tuple[int, str]:
        """Its exit code and what it printed on stderr, once it exits by itself."""
        code = self.process.wait(timeout=30)
        assert self.process.stderr is not None
        return code, self.process.stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def node_agent(node, redis_url, deployed, recorder) -> Iterator[NodeAgent]:
    """The Node.js agent serving word_count in namespace default (recorded from its first call)."""
    agent = NodeAgent(node, redis_url, "default", "node-agent-1", "word_count")
    yield agent
    agent.kill()


def test_mixed_workflow_python_and_node_agents(client, node_agent, recorder):
    """fetch (Python) -> count (Node.js) -> publish (Python): one graph, two runtimes."""
    python_agent = agentfn.Agent(client, "py-agent-1")

    @python_agent.handler("fetch")
    def fetch(task: agentfn.TaskContext) -> dict[str, Any]:
        return {
            "text": "Redis Functions coordinate agents written in any language",
            "url": task.payload["url"],
        }

    @python_agent.handler("publish")
    def publish(task: agentfn.TaskContext) -> dict[str, Any]:
        counted = task.inputs["count"]
        return {"published": True, "words": counted["words"], "counted_by": counted["agent"]}

    thread = python_agent.start()
    try:
        node_agent.expect("registered")
        workflow_id = client.create_workflow(
            [
                {"id": "fetch", "capability": "fetch", "input": {"url": "https://example.org"}},
                {"id": "count", "capability": "word_count", "depends_on": ["fetch"]},
                {"id": "publish", "capability": "publish", "depends_on": ["count"]},
            ]
        )
        workflow = client.wait_workflow(workflow_id, timeout=30)
        handled = node_agent.expect("completed")
    finally:
        python_agent.stop()
        thread.join(timeout=30)
    assert workflow.state == agentfn.WorkflowState.COMPLETED
    ran_by = {step.id: client.get_task(step.task).agent for step in workflow.steps}
    assert ran_by == {"fetch": "py-agent-1", "count": "node-agent-1", "publish": "py-agent-1"}
    assert workflow.results["count"] == {"words": 8, "agent": "node-agent-1", "language": "node"}
    assert workflow.results["publish"] == {
        "published": True,
        "words": 8,
        "counted_by": "node-agent-1",
    }
    assert (handled["task"], handled["workflow"], handled["step"]) == (
        workflow.step("count").task,
        workflow_id,
        "count",
    )

    assert node_agent.stop() == 0
    assert client.agent_find("word_count") == []
    calls = recorder.stop()
    check_calls_against_headers(calls)
    node_calls = [call for call in calls if call[4:5] == ["node-agent-1"]]
    assert {
        "agentfn_agent_register",
        "agentfn_task_claim",
        "agentfn_agent_deregister",
    } <= {call[1] for call in node_calls}
    secret = agent_secret(calls, "node-agent-1")
    assert {call[5] for call in node_calls if call[1] in AS_AGENT} == {secret}
    assert secret not in json.dumps(handled)


def test_node_agent_whose_id_is_live_under_another_secret_exits(
    node, redis_url, client, node_agent, recorder
):
    """A second process with the same id is DENIED at registration: it says so and exits 1."""
    node_agent.expect("registered")
    second = NodeAgent(node, redis_url, "default", "node-agent-1", "word_count")
    try:
        code, error = second.exited()
    finally:
        second.kill()
    assert code == 1 and "DENIED" in error and "node-agent-1" in error, error
    calls = recorder.stop()
    first, again = [call[5] for call in calls if call[1] == "agentfn_agent_register"]
    assert first != again and first not in error and again not in error
    assert [agent.id for agent in client.agent_find("word_count")] == ["node-agent-1"]
    assert node_agent.stop() == 0
