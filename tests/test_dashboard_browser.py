"""The dashboard in a real headless Chromium (Playwright), against a real redis-server, a real
`agentfn dashboard` process and real agent processes. Every wait is on a page condition or a
Redis event, with a timeout; every page is saved as a screenshot under test-artifacts/dashboard.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis
from playwright.sync_api import Browser, Page, expect, sync_playwright

import agentfn
from tests.agent_fixtures import spawn_worker, wait_for, wait_for_task
from tests.dashboard_agents import release_key
from tests.dashboard_helpers import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    Server,
    get,
    post,
    start_server,
)

NAMESPACE = "dash"

#: Completed steps are drawn in this fill (--completed in dashboard.css).
COMPLETED_FILL = "rgb(134, 239, 172)"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the browser tests, each with a fresh context. Module scope: Playwright's
    sync API runs an event loop in this thread while it is open, which asyncio.run() in later
    test modules would trip over."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="module")
def redis_url_module(redis_proc) -> str:
    return f"redis://{redis_proc.host}:{redis_proc.port}/0"


@pytest.fixture(scope="module")
def dash(redis_url_module: str) -> Iterator[agentfn.Client]:
    """A client of namespace 'dash' on an emptied server (once for the module)."""
    connection = redis.Redis.from_url(redis_url_module, decode_responses=True)
    connection.flushall()
    connection.function_flush()
    agentfn.deploy(connection, NAMESPACE)
    yield agentfn.Client(connection, NAMESPACE)
    connection.close()


@pytest.fixture(scope="module")
def worker(dash: agentfn.Client, redis_url_module: str) -> Iterator[None]:
    """One agent process serving gate, ask, flaky and noop."""
    process = spawn_worker(
        redis_url_module, "tests.dashboard_agents:worker", "--namespace", NAMESPACE
    )
    try:
        wait_for(dash, lambda: dash.agent_find("gate"), "the worker registered", timeout=30)
        yield
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def dashboard(dash: agentfn.Client, worker: None, redis_url_module: str) -> Iterator[Server]:
    server = start_server(
        "dashboard", redis_url_module, "--namespace", NAMESPACE, "--allow-actions"
    )
    yield server
    server.stop()


def open_live(page: Page, url: str) -> None:
    """Load a page and wait until its live updates are connected; mark the document, so that a
    reload (which would drop the mark) fails the test."""
    page.goto(url)
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    page.evaluate("window.__notReloaded = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_overview_shows_an_agent_within_2_s_of_registering_and_its_departure(
    page: Page, dashboard: Server, dash: agentfn.Client, redis_url_module: str
) -> None:
    open_live(page, f"{dashboard.url}/ns/{NAMESPACE}/")
    row = page.locator('tr[data-agent="watcher-1"]')
    expect(row).to_have_count(0)
    process = spawn_worker(
        redis_url_module,
        "tests.dashboard_agents:watcher",
        "--namespace",
        NAMESPACE,
        "--agent-id",
        "watcher-1",
    )
    try:
        wait_for(
            dash,
            lambda: any(agent.id == "watcher-1" for agent in dash.agent_find()),
            "watcher-1 registered",
            timeout=30,
        )
        expect(row).to_have_attribute("data-status", "live", timeout=2_000)
        expect(row.locator("td").nth(2)).to_have_text("watch")
        screenshot(page, "overview")
    finally:
        process.terminate()
        process.wait(timeout=15)
    expect(row).to_have_count(0, timeout=2_000)  # it deregistered on SIGTERM
    assert_not_reloaded(page)


def test_workflow_graph_changes_colour_as_steps_complete_without_reload(
    page: Page, dashboard: Server, dash: agentfn.Client
) -> None:
    workflow_id = dash.create_workflow(
        [
            {"id": "plan", "capability": "gate"},
            {"id": "left", "capability": "gate", "depends_on": ["plan"]},
            {"id": "right", "capability": "gate", "depends_on": ["plan"]},
            {"id": "merge", "capability": "gate", "depends_on": ["left", "right"]},
        ],
        workflow_id="colours",
    )
    open_live(page, f"{dashboard.url}/ns/{NAMESPACE}/workflows/{workflow_id}")
    graph = page.locator("#wf-graph")
    expect(graph.locator("#step-plan")).to_have_attribute("data-state", "running")
    expect(graph.locator("#step-merge")).to_have_attribute("data-state", "waiting")
    expect(graph.locator("path.edge")).to_have_count(4)  # fan-out to two, fan-in from two
    screenshot(page, "workflow-running")
    for step in ("plan", "left", "right", "merge"):
        dash.redis.rpush(release_key(workflow_id, step), "go")
        node = graph.locator(f"#step-{step}")
        expect(node).to_have_attribute("data-state", "completed")
        expect(node.locator("rect")).to_have_css("fill", COMPLETED_FILL)
    expect(page.locator("#wf-state")).to_have_text("completed")
    expect(page.locator('#wf-steps tr[data-step="merge"] code')).to_have_text('{"step":"merge"}')
    assert_not_reloaded(page)
    screenshot(page, "workflow")
    page.goto(f"{dashboard.url}/ns/{NAMESPACE}/workflows")
    expect(page.locator(f'tr[data-workflow="{workflow_id}"]')).to_have_attribute(
        "data-state", "completed"
    )
    screenshot(page, "workflows")


def test_a_dead_letter_requeued_by_clicking_then_completes(
    page: Page, dashboard: Server, dash: agentfn.Client
) -> None:
    task_id = dash.submit("flaky", {"n": 1}, max_attempts=1)
    wait_for_task(dash, task_id, {"dead"})
    open_live(page, f"{dashboard.url}/ns/{NAMESPACE}/dead-letters")
    row = page.locator(f'#dead-list tr[data-task="{task_id}"]')
    expect(row.locator("td.error")).to_contain_text("the first attempt always fails")
    screenshot(page, "dead-letters")
    row.get_by_role("button", name="Requeue").click()
    expect(page).to_have_url(re.compile(rf"/ns/{NAMESPACE}/tasks/{task_id}\?notice="))
    expect(page.locator("#notice")).to_contain_text(f"task {task_id} requeued")
    expect(page.locator("#task-state")).to_have_text("completed")  # pushed: no reload
    expect(page.locator("#task-result")).to_contain_text('"attempt": 2')
    expect(page.locator("#task-errors")).to_contain_text("the first attempt always fails")
    screenshot(page, "task")
    assert dash.get_task(task_id).state == "completed"
    assert dash.redis.xlen(agentfn.keys.dead_letters(NAMESPACE)) == 0


def test_an_input_required_step_is_answered_from_the_page(
    page: Page, dashboard: Server, dash: agentfn.Client
) -> None:
    workflow_id = dash.create_workflow(
        [{"id": "pick", "capability": "ask"}], workflow_id="question"
    )
    dash.wait_workflow(workflow_id, timeout=30, until_input=True)
    open_live(page, f"{dashboard.url}/ns/{NAMESPACE}/workflows/{workflow_id}")
    expect(page.locator("#step-pick")).to_have_attribute("data-state", "input-required")
    question = page.locator('.input-required[data-step="pick"]')
    expect(question.locator(".prompt")).to_contain_text("which colour?")
    screenshot(page, "workflow-input-required")
    question.get_by_role("textbox").fill("blue")
    question.get_by_role("button", name="Answer").click()
    expect(page.locator("#notice")).to_contain_text("step pick of workflow question signaled")
    expect(page.locator("#step-pick")).to_have_attribute("data-state", "completed")
    expect(page.locator("#wf-state")).to_have_text("completed")
    assert dash.get_workflow(workflow_id).results == {"pick": {"answer": "blue"}}


def test_the_event_tail_shows_new_events_live(
    page: Page, dashboard: Server, dash: agentfn.Client
) -> None:
    open_live(page, f"{dashboard.url}/ns/{NAMESPACE}/events")
    task_id = dash.submit("noop", {"hello": "tail"})
    rows = page.locator("#event-rows")
    expect(rows.locator("tr", has_text="task.submitted").filter(has_text=task_id)).to_have_count(1)
    expect(rows.locator("tr", has_text="task.completed").filter(has_text=task_id)).to_have_count(1)
    assert_not_reloaded(page)
    screenshot(page, "events")


def test_actions_need_allow_actions_and_the_csrf_token(
    page: Page, dashboard: Server, dash: agentfn.Client, redis_url_module: str
) -> None:
    task_id = dash.submit("flaky", {"n": 2}, max_attempts=1)
    wait_for_task(dash, task_id, {"dead"})
    requeue = f"/ns/{NAMESPACE}/tasks/{task_id}/requeue"
    read_only = start_server("dashboard", redis_url_module, "--namespace", NAMESPACE)
    try:
        page.goto(f"{read_only.url}/ns/{NAMESPACE}/dead-letters")
        expect(page.locator(f'#dead-list tr[data-task="{task_id}"]')).to_have_count(1)
        expect(page.locator("form")).to_have_count(0)
        expect(page.locator(".mode")).to_have_text("read-only")
        status, _ = post(read_only.url + requeue, {"csrf": "guess", "next": f"/ns/{NAMESPACE}/"})
        assert status == 403
    finally:
        read_only.stop()
    assert dash.get_task(task_id).state == "dead"

    # With --allow-actions: a POST without the page's token (or from another origin) is refused...
    assert post(dashboard.url + requeue, {"next": f"/ns/{NAMESPACE}/"})[0] == 403
    assert post(dashboard.url + requeue, {"csrf": "x" * 43})[0] == 403
    assert dash.get_task(task_id).state == "dead"
    # ... and one with it is done.
    status, page_html = get(f"{dashboard.url}/ns/{NAMESPACE}/dead-letters")
    token = re.search(r'name="csrf" value="([^"]+)"', page_html)
    assert status == 200 and token
    status, location = post(
        dashboard.url + requeue, {"csrf": token.group(1), "next": f"/ns/{NAMESPACE}/"}
    )
    assert status == 303 and location.startswith(f"/ns/{NAMESPACE}/?notice=")
    wait_for_task(dash, task_id, {"completed"})
