"""A step waiting for input survives a redis-server restart (it is only data), then finishes.

This test runs its own redis-server with appendonly yes in a temporary directory: it takes the
workflow to input-required, SHUTDOWN (which writes the AOF and a snapshot), starts a new server
on the same directory, signals the step and finishes the workflow.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import agentfn
from agentfn import StepState, WorkflowState, WorkflowStep
from agentfn.server import READY_LINE, find_redis_server, free_port

from .workflows_helpers import CAPABILITY, AskInput, echo, run_until


class AofServer:
    """redis-server with appendonly yes on a fixed directory; start() returns once it is ready."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> redis.Redis:
        self.process = subprocess.Popen(
            [
                find_redis_server(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--daemonize",
                "no",
                "--logfile",
                "",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        ready = threading.Event()
        log: list[str] = []

        def drain() -> (
            None
        ):  # read the log (waking the starter at the ready line) so the pipe never fills
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                log.append(line)
                if READY_LINE in line:
                    ready.set()
            ready.set()

        threading.Thread(target=drain, daemon=True).start()
        assert ready.wait(30) and self.process.poll() is None, "".join(log[-20:])
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def shutdown(self, connection: redis.Redis) -> None:
        """SHUTDOWN: the server saves (AOF fsync and a snapshot) and exits."""
        with contextlib.suppress(redis.ConnectionError):
            connection.shutdown()
        connection.close()
        assert self.process is not None
        assert self.process.wait(30) == 0

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


@pytest.fixture
def aof_server(tmp_path) -> Iterator[AofServer]:
    server = AofServer(tmp_path)
    yield server
    server.kill()


def test_input_required_survives_a_restart_then_the_signal_finishes_it(aof_server):
    def ask_once(task):
        if task.step == "approve" and not (task.inputs or {}).get("_signal"):
            return AskInput({"question": "ship it?"})
        return echo(task)

    connection = aof_server.start()
    agentfn.deploy(connection, "default")
    client = agentfn.Client(connection)
    client.agent_register("a1", [CAPABILITY], ttl_ms=3_600_000)
    workflow_id = client.create_workflow(
        [
            WorkflowStep("build", CAPABILITY),
            WorkflowStep("approve", CAPABILITY),
            WorkflowStep("ship", CAPABILITY),
        ],
        chain=True,
        context={"release": "1.0"},
    )
    waiting = run_until(client, "a1", workflow_id, ask_once, until_input=True)
    assert waiting.step("approve").state == StepState.INPUT_REQUIRED
    aof_server.shutdown(connection)

    connection = aof_server.start()
    assert (Path(aof_server.directory) / "appendonlydir").is_dir()
    client = agentfn.Client(connection)  # checks that the library came back with the data
    restored = client.get_workflow(workflow_id)
    assert restored.state == WorkflowState.RUNNING and restored.input_required == 1
    assert restored.step("approve").state == StepState.INPUT_REQUIRED
    assert restored.step("approve").prompt == {"question": "ship it?"}
    assert client.ctx_get(workflow_id).document == {"release": "1.0"}
    client.agent_register("a2", [CAPABILITY], ttl_ms=3_600_000)
    client.signal(workflow_id, "approve", "yes")
    info = run_until(client, "a2", workflow_id, ask_once)
    assert info.state == WorkflowState.COMPLETED
    assert info.results["approve"]["inputs"] == {"build": info.results["build"], "_signal": "yes"}
    assert info.results["ship"]["inputs"] == {"approve": info.results["approve"]}
    aof_server.shutdown(connection)
