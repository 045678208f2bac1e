"""The dashboard's ASGI app (starlette): pages, their live event streams, actions, /metrics.

    GET  /ns/<ns>/                        overview: agents, queues, workflows, dead letters, activity
    GET  /ns/<ns>/workflows[?state=S]     workflows, newest first
    GET  /ns/<ns>/workflows/<id>          a workflow: its graph, steps, shared context
    GET  /ns/<ns>/tasks/<id>              a task: record, failed attempts, events
    GET  /ns/<ns>/dead-letters            dead letters (requeue)
    GET  /ns/<ns>/events                  the live event tail
    GET  /ns/<ns>/live?view=V[&after=ID]  server-sent events: fragments of view V (or event rows)
    POST /ns/<ns>/tasks/<id>/requeue|cancel, /ns/<ns>/workflows/<id>/cancel|signal
    GET  /metrics                         Prometheus text format (with the metrics extra)

Actions exist only when the server was started with ``allow_actions``; each POST must carry
the server's CSRF token (a secret written into its pages, which another site cannot read) and,
when the browser sends an Origin, come from this server's own origin.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import redis
import redis.asyncio
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import keys
from ..client.client import Client
from ..client.connect import asyncio_twin, never_resent
from ..errors import AgentfnError, NotFound
from ..replies import range_entries
from . import rendering
from .live import Hub, stream_events
from .reads import VIEWS, Namespace, event_record, read_view

STATIC = Path(__file__).parent / "static"

#: Page templates by view name, with their titles.
PAGES = {
    "overview": ("overview.html", "Overview"),
    "workflows": ("workflows.html", "Workflows"),
    "workflow": ("workflow.html", "Workflow"),
    "task": ("task.html", "Task"),
    "dead": ("dead.html", "Dead letters"),
    "events": ("events.html", "Events"),
}


class Dashboard:
    """The state of one dashboard server: its connections, namespaces, hubs and templates."""

    def __init__(self, url: str, namespaces: list[str], *, allow_actions: bool = False) -> None:
        self.namespaces = [keys.validate_namespace(namespace) for namespace in namespaces]
        self.allow_actions = allow_actions
        self.csrf_token = secrets.token_urlsafe(32)
        # Actions write: never re-sent after a timeout (agentfn.connect's policy).
        self.redis = redis.Redis.from_url(url, **never_resent({"decode_responses": True}))
        self.async_redis = asyncio_twin(url, self.redis, decode_responses=True)
        self.env = rendering.environment()
        self.hubs = {
            namespace: Hub(namespace, self.async_redis, self.render_view, self.render_event_rows)
            for namespace in self.namespaces
        }
        self.reads = {
            namespace: Namespace(
                self.redis, Client(self.redis, namespace), namespace, self.hubs[namespace].activity
            )
            for namespace in self.namespaces
        }
        self.metrics: Callable[[], bytes] | None = None

    # -- rendering ---------------------------------------------------------------------------

    def common(self, namespace: str) -> dict[str, Any]:
        return {
            "ns": namespace,
            "namespaces": self.namespaces,
            "allow_actions": self.allow_actions,
            "csrf": self.csrf_token,
        }

    def fragments(self, namespace: str, view: str, context: dict[str, Any]) -> dict[str, Markup]:
        """The live fragments of a view, rendered from its context."""
        values = {**self.common(namespace), **context}
        return {
            name: Markup(self.env.get_template(f"fragments/{name}.html").render(values))
            for name in VIEWS[view.partition(":")[0]].fragments
        }

    async def render_view(self, namespace: str, view: str) -> dict[str, str]:
        """The fragments of a view, read now; none once its object is gone."""

        def read_and_render() -> dict[str, str]:
            try:
                return {
                    name: str(html)
                    for name, html in self.fragments(
                        namespace, view, read_view(self.reads[namespace], view)
                    ).items()
                }
            except NotFound:
                return {}

        return await run_in_threadpool(read_and_render)

    async def render_event_rows(
        self, namespace: str, entries: list[tuple[str, dict[str, str]]]
    ) -> str:
        """Rows of the event tail for new entries, newest first."""
        template = self.env.get_template("fragments/event-rows.html")
        return template.render(
            ns=namespace, events=[event_record(*entry) for entry in reversed(entries)]
        )

    def page(
        self,
        request: Request,
        namespace: str,
        view: str,
        context: dict[str, Any],
        status_code: int = 200,
    ) -> HTMLResponse:
        name = view.partition(":")[0]
        template, title = PAGES[name]
        html = self.env.get_template(template).render(
            **self.common(namespace),
            **context,
            view=view,
            title=title,
            page=name,
            fragments=self.fragments(namespace, view, context),
            notice=request.query_params.get("notice"),
            notice_kind=request.query_params.get("kind", "ok"),
        )
        return HTMLResponse(html, status_code=status_code)

    def problem(self, namespace: str | None, status_code: int, message: str) -> HTMLResponse:
        html = self.env.get_template("problem.html").render(
            **self.common(namespace or self.namespaces[0]),
            title="Problem",
            page="",
            view="",
            message=message,
        )
        return HTMLResponse(html, status_code=status_code)

    # -- routes ------------------------------------------------------------------------------

    def namespace_of(self, request: Request) -> str:
        namespace: str = request.path_params["ns"]
        if namespace not in self.hubs:
            raise NotFound(
                f"namespace {namespace!r} is not watched by this dashboard "
                f"(it watches {', '.join(self.namespaces)})"
            )
        return namespace

    async def home(self, request: Request) -> Response:
        return RedirectResponse(f"/ns/{self.namespaces[0]}/", status_code=307)

    def view_page(self, name: str, argument: str | None = None) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            namespace = self.namespace_of(request)
            view = name
            if argument:
                view = f"{name}:{request.path_params[argument]}"
            elif name == "workflows" and request.query_params.get("state"):
                view = f"workflows:{request.query_params['state']}"
            context = await run_in_threadpool(read_view, self.reads[namespace], view)
            if name == "events":
                context["after"] = context["events"][0]["id"] if context["events"] else "0-0"
            return self.page(request, namespace, view, context)

        return handle

    async def live(self, request: Request) -> Response:
        namespace = self.namespace_of(request)
        view = request.query_params.get("view", "overview")
        if view.partition(":")[0] not in VIEWS:
            return PlainTextResponse(f"no view {view!r}", status_code=404)
        hub = self.hubs[namespace]
        subscriber = hub.subscribe(view)
        first: list[tuple[str, str]] = []
        if view == "events":
            after = request.query_params.get("after") or "0-0"
            missed = range_entries(
                await self.async_redis.xrange(keys.events(namespace), min=f"({after}")
            )
            if missed:
                first.append(
                    (
                        "events",
                        json.dumps(
                            {
                                "html": await self.render_event_rows(namespace, missed),
                                "last": missed[-1][0],
                            }
                        ),
                    )
                )
        else:
            fragments = await self.render_view(namespace, view)
            subscriber.sent.update(fragments)
            first.append(("fragments", json.dumps(fragments)))
        return StreamingResponse(
            stream_events(hub, subscriber, first),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def metrics_page(self, request: Request) -> Response:
        if self.metrics is None:
            return PlainTextResponse(
                "metrics need the metrics extra: pip install 'agentfn[metrics]'\n", status_code=501
            )
        body = await run_in_threadpool(self.metrics)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    # -- actions -----------------------------------------------------------------------------

    def action(
        self, perform: Callable[[Client, Request, dict[str, str]], str]
    ) -> Callable[[Request], Any]:
        """A POST route: check that actions are on and the CSRF token, perform, redirect back."""

        async def handle(request: Request) -> Response:
            namespace = self.namespace_of(request)
            if not self.allow_actions:
                return self.problem(
                    namespace, 403, "actions are off: start the dashboard with --allow-actions"
                )
            # A small urlencoded form, parsed here (starlette's form parser needs python-multipart).
            form = {
                name: values[-1]
                for name, values in parse_qs(
                    (await request.body()).decode("utf-8", "replace"), max_num_fields=20
                ).items()
            }
            token = str(form.get("csrf") or "")
            origin = request.headers.get("origin")
            if not hmac.compare_digest(token.encode(), self.csrf_token.encode()) or (
                origin and urlsplit(origin).netloc != request.headers.get("host")
            ):
                return self.problem(
                    namespace,
                    403,
                    "refused: the form's CSRF token is missing or wrong (reload the page)",
                )
            back = str(form.get("next") or "")
            if not back.startswith(f"/ns/{namespace}/") or "//" in back:
                back = f"/ns/{namespace}/"
            client = self.reads[namespace].client
            try:
                notice, kind = await run_in_threadpool(perform, client, request, form), "ok"
            except redis.exceptions.NoPermissionError as error:
                notice, kind = (
                    f"refused by Redis: this dashboard's Redis user lacks the right ({error})",
                    "error",
                )
            except (AgentfnError, ValueError) as error:
                notice, kind = f"refused: {error}", "error"
            separator = "&" if "?" in back else "?"
            return RedirectResponse(
                f"{back}{separator}{urlencode({'notice': notice, 'kind': kind})}", status_code=303
            )

        return handle

    @staticmethod
    def _requeue(client: Client, request: Request, form: dict[str, str]) -> str:
        task_id = request.path_params["id"]
        attempts = str(form.get("max_attempts") or "").strip()
        state = client.requeue(task_id, max_attempts=int(attempts) if attempts else None)
        return f"task {task_id} requeued: {state}"

    @staticmethod
    def _cancel_task(client: Client, request: Request, form: dict[str, str]) -> str:
        task_id = request.path_params["id"]
        return f"task {task_id}: {client.cancel(task_id)}"

    @staticmethod
    def _cancel_workflow(client: Client, request: Request, form: dict[str, str]) -> str:
        workflow_id = request.path_params["id"]
        return f"workflow {workflow_id}: {client.cancel_workflow(workflow_id)}"

    @staticmethod
    def _signal(client: Client, request: Request, form: dict[str, str]) -> str:
        workflow_id, step = request.path_params["id"], str(form.get("step") or "")
        text = str(form.get("value") or "")
        try:
            value = json.loads(text)
        except ValueError:
            value = text  # plain text answers travel as a JSON string
        client.signal(workflow_id, step, value)
        return f"step {step} of workflow {workflow_id} signaled"

    # -- the app -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        for hub in self.hubs.values():
            hub.start()
        try:
            yield
        finally:
            for hub in self.hubs.values():
                await hub.stop()
            await self.async_redis.aclose()
            self.redis.close()

    def app(self) -> Starlette:
        routes = [
            Route("/", self.home),
            Route("/metrics", self.metrics_page),
            Route("/ns/{ns}/", self.view_page("overview")),
            Route("/ns/{ns}/workflows", self.view_page("workflows")),
            Route("/ns/{ns}/workflows/{id}", self.view_page("workflow", "id")),
            Route("/ns/{ns}/tasks/{id}", self.view_page("task", "id")),
            Route("/ns/{ns}/dead-letters", self.view_page("dead")),
            Route("/ns/{ns}/events", self.view_page("events")),
            Route("/ns/{ns}/live", self.live),
            Route("/ns/{ns}/tasks/{id}/requeue", self.action(self._requeue), methods=["POST"]),
            Route("/ns/{ns}/tasks/{id}/cancel", self.action(self._cancel_task), methods=["POST"]),
            Route(
                "/ns/{ns}/workflows/{id}/cancel",
                self.action(self._cancel_workflow),
                methods=["POST"],
            ),
            Route("/ns/{ns}/workflows/{id}/signal", self.action(self._signal), methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]

        async def not_found(request: Request, error: Exception) -> Response:
            return self.problem(
                request.path_params.get("ns")
                if request.path_params.get("ns") in self.hubs
                else None,
                404,
                f"not found: {error} (finished work expires after its retention)",
            )

        async def unavailable(request: Request, error: Exception) -> Response:
            return self.problem(None, 503, f"redis: {error}")

        return Starlette(
            routes=routes,
            lifespan=self.lifespan,
            exception_handlers={NotFound: not_found, redis.RedisError: unavailable},
        )
