"""AsyncClient is typed as it behaves: awaitable API methods, declared in a generated stub.

The stub (agentfn/client/async_surface.pyi) is current; what it declares matches what the methods
return at run time; and mypy (strict) accepts awaited AsyncClient calls and plain Client calls,
and refuses an AsyncClient result used without ``await``, and an Orchestrator of anything but a
Client or an AsyncClient.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

import agentfn
from agentfn.client import client, surface

GOOD = """
from __future__ import annotations

from collections.abc import AsyncIterator

from typing_extensions import assert_type

from agentfn import AsyncClient, Client, InboxRead, Message, Orchestrator, TaskInfo, WorkflowInfo


async def asyncio_client(client: AsyncClient) -> str:
    task_id = await client.submit("summarize", {"text": "..."}, priority="high")
    assert_type(task_id, str)
    assert_type(await client.get_task(task_id), TaskInfo)
    assert_type(await client.read_inbox("a", ack=["1-0"]), InboxRead)
    assert_type(await client.receive("a", 1.0), list[Message])
    assert_type(await client.request("a", "b", "ask", {}, 1.0), Message)
    assert_type(await client.wait_workflow("w1", until_input=True), WorkflowInfo)
    assert_type(await client.ack("a", "1-0", "2-0"), int)
    assert_type(client.messages("a"), AsyncIterator[Message])
    async for message in client.messages("a", timeout=1.0):
        assert_type(message, Message)
    await client.check_library()
    return task_id.upper()


def sync_client(client: Client) -> str:
    task_id = client.submit("summarize", {"text": "..."})
    assert_type(client.get_task(task_id), TaskInfo)
    assert_type(client.wait_workflow("w1"), WorkflowInfo)
    for message in client.messages("a", timeout=1.0):
        assert_type(message, Message)
    client.check_library()
    return task_id.upper()


def orchestrators(client: Client, async_client: AsyncClient) -> list[Orchestrator]:
    return [Orchestrator(client, timeout=5), Orchestrator(async_client)]
"""

BAD = """
from agentfn import AsyncClient, Orchestrator


async def forgot_await(client: AsyncClient) -> str:
    task_id = client.submit("summarize", {"text": "..."})
    return task_id.upper()


async def wrong_arguments(client: AsyncClient) -> None:
    await client.submit("summarize", {}, priorty="high")


def orchestrator_of_a_connection() -> Orchestrator:
    import redis

    return Orchestrator(redis.Redis())
"""


def test_the_stub_is_current():
    assert surface.STUB.read_text(encoding="utf-8") == surface.render(), (
        "agentfn/client/async_surface.pyi is stale: run `make async-surface`"
    )


def test_the_stub_declares_every_public_api_method():
    declared = {item.name for _, group in surface.declarations() for item in group}
    public = {
        name
        for name in dir(agentfn.AsyncClient)
        if not name.startswith("_") and callable(getattr(agentfn.AsyncClient, name))
    }
    # AsyncClient's own methods (check_library) are typed where they are written.
    own = set(vars(agentfn.AsyncClient)) | set(vars(client._ClientCore))
    assert "check_library" in own
    assert declared == public - own


def _dummy(annotation: str) -> Any:
    """A value of the annotation's type that the method accepts without a server."""
    if annotation == "Sequence[tuple[str, Any]]":  # submit_many's (capability, payload)
        return [("c", None)]
    if annotation.startswith("Sequence[tuple["):  # complete_many's (task_id, token, result)
        return [("t1", "1-" + "a" * 40, None)]
    if annotation.startswith("Sequence["):
        return [{"id": "s", "capability": "c"}]
    return {"str": "x", "int": 1, "float": 1.0}.get(annotation, {})


def _required_arguments(parameters: list[str]) -> list[Any]:
    values = []
    for parameter in parameters[1:]:  # self
        if parameter == "*":
            break
        name, _, annotation = parameter.partition(": ")
        if " = " not in annotation:
            values.append(_dummy(annotation))
        if name.startswith("*"):
            break
    return values


def test_what_the_stub_declares_is_what_asyncclient_returns():
    """Each method declared async returns a coroutine on AsyncClient; messages an async iterator."""
    async_client = agentfn.AsyncClient(redis.asyncio.Redis(), check_library=False)
    async_client.agent_secrets["x"] = "s" * 32  # the agent-side methods' agent id, as _dummy passes
    for _, group in surface.declarations():
        for declaration in group:
            result = getattr(async_client, declaration.name)(
                *_required_arguments(declaration.parameters)
            )
            if inspect.isasyncgen(result):
                result.aclose().close()
            elif inspect.iscoroutine(result):
                result.close()
            if declaration.is_async:
                assert inspect.iscoroutine(result), declaration.name
            elif declaration.returns.startswith("AsyncIterator["):
                assert inspect.isasyncgen(result), declaration.name
            else:  # a method that makes no call: a plain value
                assert not inspect.isawaitable(result), declaration.name


def test_the_generator_refuses_a_method_it_cannot_classify():
    def polls(self: Any, task_id: str) -> str:
        return self.get_task(task_id).state

    def sometimes_calls(self: Any, task_id: str) -> str:
        if not task_id:
            return "none"
        return self._call("agentfn_task_cancel", [task_id])

    for method in (polls, sometimes_calls):
        with pytest.raises(surface.SurfaceError, match="cannot tell"):
            surface.declare(method, {"get_task"})


def test_the_stub_imports_each_name_from_where_its_module_gets_it():
    """Names from the standard library, a third-party package imported whole, and agentfn
    (relative to agentfn.client), in the order ruff's isort wants."""
    used = dict.fromkeys(["redis", "Any", "Sequence", "LibraryInfo", "keys", "str"], client)
    lines = surface._imports([surface.Declaration("m", True, ["self"], "None", used)])
    assert lines == [
        "from collections.abc import Sequence",
        "from typing import Any",
        "",
        "import redis.asyncio",
        "",
        "from .. import keys",
        "from ..library.info import LibraryInfo",
        "",
    ]
    ruff = Path(sys.executable).with_name("ruff")
    checked = subprocess.run(
        [str(ruff), "check", "--select", "I", "--stdin-filename", str(surface.STUB), "-"],
        input="\n".join(lines)
        + "\nx: Sequence[Any] | redis.asyncio.Redis | LibraryInfo | keys.X\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout


def test_mypy_sees_awaitables_on_asyncclient_and_values_on_client(tmp_path: Path):
    (tmp_path / "good.py").write_text(textwrap.dedent(GOOD))
    (tmp_path / "bad.py").write_text(textwrap.dedent(BAD))
    checked = subprocess.run(
        [
            *(sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent"),
            *("--cache-dir", str(tmp_path / "cache"), "--no-error-summary"),
            *("good.py", "bad.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert not [line for line in errors if line.startswith("good.py")], checked.stdout
    assert any(
        line.startswith("bad.py:7:")
        and '"Coroutine[Any, Any, str]" has no attribute "upper"' in line
        for line in errors
    ), checked.stdout
    assert any(
        line.startswith("bad.py:11:") and 'Unexpected keyword argument "priorty"' in line
        for line in errors
    ), checked.stdout
    assert any(
        line.startswith("bad.py:17:")
        and 'Argument 1 to "Orchestrator" has incompatible type "Redis' in line
        for line in errors
    ), checked.stdout
    assert checked.returncode == 1
