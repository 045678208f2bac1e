"""Take docs/dashboard.png, the README's picture of the dashboard: a temporary redis-server, three
agents in this process, some finished and some running work, a dead letter, then the overview and
a workflow page in Debian's chromium (Playwright, never a downloaded browser).

    .venv/bin/python scripts/dashboard_screenshot.py [--output docs/dashboard.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import redis
from playwright.sync_api import expect, sync_playwright

import agentfn
from agentfn.server import EmbeddedRedis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.dashboard_helpers import CHROMIUM, CHROMIUM_ARGS, start_server  # noqa: E402


def scene(client: agentfn.Client) -> list[agentfn.Agent]:
    """Agents serving research/write/code; a finished workflow, a running one, a dead letter."""
    release = "screenshot:release"
    researcher = agentfn.Agent(client, "researcher-1", concurrency=4)
    writer = agentfn.Agent(client, "writer-1")
    coder = agentfn.Agent(client, "coder-1")
    researcher.handler("research")(lambda task: {"notes": f"about {task.payload}"})
    writer.handler("write")(
        lambda task: client.redis.blpop([release], timeout=30) and {"draft": "..."}
    )

    def code(task: agentfn.TaskContext) -> dict:
        raise RuntimeError("compiler not found")

    coder.handler("code")(code)
    agents = [researcher, writer, coder]
    for agent in agents:
        agent.start()
    steps = [
        {"id": "plan", "capability": "research", "input": "streams"},
        *(
            {"id": f"research-{n}", "capability": "research", "input": n, "depends_on": ["plan"]}
            for n in ("groups", "acks", "trimming")
        ),
        {
            "id": "write",
            "capability": "write",
            "depends_on": ["research-groups", "research-acks", "research-trimming"],
        },
        {"id": "example", "capability": "code", "depends_on": ["write"]},
    ]
    client.redis.rpush(release, "go")
    done = client.create_workflow(steps, workflow_id="write-up-1", policy="continue")
    client.wait_workflow(done, timeout=30)
    client.create_workflow(steps, workflow_id="write-up-2")
    for _ in range(12):
        client.submit("research", "a topic")
    return agents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(REPO / "docs" / "dashboard.png"))
    options = parser.parse_args()
    with EmbeddedRedis() as server:
        connection = redis.Redis.from_url(server.url, decode_responses=True)
        agentfn.deploy(connection)
        client = agentfn.Client(connection)
        agents = scene(client)
        dashboard = start_server("dashboard", server.url, "--allow-actions")
        try:
            base = dashboard.url
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 860})
                page.goto(f"{base}/ns/default/")
                expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
                expect(page.locator('tr[data-workflow="write-up-2"]')).to_be_visible()
                page.screenshot(path=options.output)
                page.goto(f"{base}/ns/default/workflows/write-up-2")
                expect(page.locator("#step-write")).to_have_attribute("data-state", "running")
                page.screenshot(
                    path=str(Path(options.output).with_name("dashboard-workflow.png")),
                    full_page=True,
                )
                browser.close()
        finally:
            dashboard.stop()
            for agent in agents:
                agent.stop(now=True)
    print("wrote", options.output)


if __name__ == "__main__":
    main()
