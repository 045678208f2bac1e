"""The demo's agents: separate OS processes started with `agentfn worker`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

#: Lease (and handler timeout) of every demo task: a killed agent's task is back this soon (ms).
TASK_TIMEOUT_MS = 2_000

#: The agents: id -> role (a factory in agentfn/cli/demo/agents.py).
AGENTS = {
    "researcher-1": "researcher",
    "researcher-2": "researcher",
    "writer-1": "writer",
    "coder-1": "coder",
}

#: The agent killed with SIGKILL while it holds a task of the parallel workflow.
VICTIM = "researcher-1"


class Fleet:
    """The agent processes: started with `agentfn worker`, stopped (or killed) on exit."""

    def __init__(self, url: str, namespace: str, log_directory: str) -> None:
        self.url = url
        self.namespace = namespace
        self.log_directory = log_directory
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        for agent_id, role in AGENTS.items():
            with open(os.path.join(self.log_directory, f"{agent_id}.log"), "wb") as log:
                self.processes[agent_id] = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "agentfn",
                        "worker",
                        f"agentfn.cli.demo.agents:{role}",
                        "--agent-id",
                        agent_id,
                        "--namespace",
                        self.namespace,
                        "--log-level",
                        "WARNING",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env={**os.environ, "REDIS_URL": self.url},  # not in ps: it may hold a password
                )

    def kill(self, agent_id: str) -> int:
        """SIGKILL one agent (no goodbye: its tasks stay leased to it); returns its pid."""
        process = self.processes[agent_id]
        process.send_signal(signal.SIGKILL)
        process.wait()
        return process.pid

    def crashed(self) -> str | None:
        """The first agent that exited on its own, with the end of its log; None when all run."""
        for agent_id, process in self.processes.items():
            if process.poll() is not None and process.returncode != -signal.SIGKILL:
                with open(
                    os.path.join(self.log_directory, f"{agent_id}.log"), errors="replace"
                ) as log:
                    tail = " | ".join(line.strip() for line in log.readlines()[-3:])
                return f"agent {agent_id} exited with status {process.returncode}: {tail}"
        return None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM every agent (each deregisters), then SIGKILL what is left after ``timeout``."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
