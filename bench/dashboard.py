"""Dashboard benchmark: page render time with 1,000 workflows and 100 agents, and the time from a
state change to the browser's event stream.

Run alone: ``.venv/bin/python bench/dashboard.py [--workflows N] [--agents N]``. It starts its own
redis-server and an `agentfn dashboard` process (needs agentfn[dashboard]), fills a namespace,
measures, prints the figures and stops both. ``run()`` returns them as a dict.

What is measured (loopback, one client):
- render: GET of each page (overview, workflows list, a workflow, a task, dead letters, events),
  ROUNDS times each, as a client sees it (HTTP round trip included); the median and the worst
  page's 95th percentile. The namespace holds N 3-step workflows (a fan-out of two after a root;
  their roots queued), 100 live agents, and the events of all that.
- push: a tab on a workflow's page (its server-sent event stream, read raw); a step of that
  workflow is completed through the client; the time until the stream delivers the fragment
  showing the step completed. PUSHES times; median and worst.
Targets (issue 14): under 200 ms per page; under 1 s from a state change to the browser.
"""

from __future__ import annotations

import argparse
import http.client
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import agentfn  # noqa: E402
from agentfn.server import EmbeddedRedis  # noqa: E402

NAMESPACE = "bench"
ROUNDS = 20
PUSHES = 10


def fill(client: agentfn.Client, workflows: int, agents: int) -> str:
    """The namespace's content; returns the id of one task (for the task page)."""
    for index in range(agents):
        client.agent_register(f"agent-{index:03d}", [f"cap-{index % 10}"], ttl_ms=3_600_000)
    for index in range(workflows):
        capability = f"cap-{index % 10}"
        client.create_workflow(
            [
                {"id": "root", "capability": capability, "input": {"n": index}},
                {"id": "left", "capability": capability, "depends_on": ["root"]},
                {"id": "right", "capability": capability, "depends_on": ["root"]},
            ]
        )
    return (
        client.get_workflow(client.create_workflow([{"id": "x", "capability": "cap-0"}]))
        .step("x")
        .task
        or ""
    )


def page_times(base: str, paths: dict[str, str]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(ROUNDS):
        for name, path in paths.items():
            began = time.perf_counter()
            with urllib.request.urlopen(base + path, timeout=30) as response:
                response.read()
                assert response.status == 200, (path, response.status)
            times[name].append((time.perf_counter() - began) * 1000)
    return times


def push_times(base: str, client: agentfn.Client) -> list[float]:
    host, port = re.match(r"http://([^:/]+):(\d+)", base).groups()  # type: ignore[union-attr]
    results = []
    for index in range(PUSHES):
        workflow_id = client.create_workflow(
            [{"id": "probe", "capability": "probe"}], workflow_id=f"probe-{index}"
        )
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", f"/ns/{NAMESPACE}/live?view=workflow:{workflow_id}")
        stream = connection.getresponse()
        while not stream.readline().startswith(b"data:"):  # the first fragments: the page as it is
            pass
        claimed = client.claim("prober").tasks[0]
        began = time.perf_counter()
        client.complete(claimed.id, claimed.token, {"ok": True})
        while True:
            line = stream.readline()
            if line.startswith(b"data:") and b'data-state=\\"completed\\"' in line:
                break
        results.append((time.perf_counter() - began) * 1000)
        connection.close()
    return results


def run(workflows: int = 1_000, agents: int = 100) -> dict[str, Any]:
    with EmbeddedRedis() as server:
        connection = redis.Redis.from_url(server.url, decode_responses=True)
        agentfn.deploy(connection, NAMESPACE)
        client = agentfn.Client(connection, NAMESPACE)
        task_id = fill(client, workflows, agents)
        client.agent_register("prober", ["probe"], ttl_ms=3_600_000)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentfn",
                "dashboard",
                "--url",
                server.url,
                "--namespace",
                NAMESPACE,
                "--port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            base = re.search(r"(http://\S+?)/\s", process.stdout.readline()).group(1)  # type: ignore[union-attr]
            some_workflow = client.get_task(task_id).workflow
            paths = {
                "overview": f"/ns/{NAMESPACE}/",
                "workflows": f"/ns/{NAMESPACE}/workflows",
                "workflow": f"/ns/{NAMESPACE}/workflows/{some_workflow}",
                "task": f"/ns/{NAMESPACE}/tasks/{task_id}",
                "dead_letters": f"/ns/{NAMESPACE}/dead-letters",
                "events": f"/ns/{NAMESPACE}/events",
            }
            page_times(base, paths)  # warm up (imports, template compilation)
            times = page_times(base, paths)
            pushes = push_times(base, client)
        finally:
            process.terminate()
            process.wait(timeout=10)
    results: dict[str, Any] = {
        f"render_{name}_ms_median": round(statistics.median(values), 1)
        for name, values in times.items()
    }
    worst_p95 = max(sorted(values)[int(len(values) * 0.95) - 1] for values in times.values())
    results["render_worst_page_p95_ms"] = {
        "measured": round(worst_p95, 1),
        "target": "< 200",
        "pass": worst_p95 < 200,
        "unit": "ms",
    }
    results["push_state_change_to_stream_ms_median"] = round(statistics.median(pushes), 1)
    results["push_state_change_to_stream_ms_max"] = {
        "measured": round(max(pushes), 1),
        "target": "< 1,000",
        "pass": max(pushes) < 1000,
        "unit": "ms",
    }
    results["details"] = (
        f"{workflows:,} workflows of 3 steps, {agents} live agents; {ROUNDS} GETs per page "
        f"after a warm-up round; {PUSHES} pushes."
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=1_000)
    parser.add_argument("--agents", type=int, default=100)
    options = parser.parse_args()
    for name, value in run(options.workflows, options.agents).items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
