"""Render the Lua library from lua/ with jinja2: constants and includes only, no generated logic."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import jinja2

from ..constants import (
    CONSUMER_GROUP,
    DEFAULTS,
    LIBRARY_NAME,
    LIMITS,
    Priority,
    StepState,
    TaskState,
    WorkflowPolicy,
    WorkflowState,
)
from ..errors import AgentfnError, ErrorCode
from ..version import __version__
from .migrate import list_migrations
from .paths import lua_dir, migrations_dir
from .protocol import load_specs

_LUA_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class RenderedLibrary:
    """The complete library source with the facts embedded in it."""

    source: str
    version: str
    code_sha: str
    """sha256 of the source rendered with an empty CODE_SHA (so anyone can recompute it)."""
    schema_version: int


def lua_literal(value: Any) -> str:
    """A Lua literal for a constant: str, int, bool, list or dict with identifier keys."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        escaped = "".join(
            ch if (32 <= ord(ch) < 127 and ch not in "\\'") else f"\\{ord(ch):03d}" for ch in value
        )
        return f"'{escaped}'"
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(lua_literal(item) for item in value) + "}"
    if isinstance(value, dict):
        parts = []
        for key in sorted(value):
            if not _LUA_IDENTIFIER.match(key):
                raise ValueError(f"{key!r} is not a Lua identifier")
            parts.append(f"{key} = {lua_literal(value[key])}")
        return "{" + ", ".join(parts) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def _enum_table(enum: type[Enum]) -> dict[str, str]:
    return {member.name: member.value for member in enum}


def _environment(base: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(base)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["lua"] = lua_literal
    return env


def render_library(
    *, lua_base: Path | None = None, migrations: Path | None = None, version: str = __version__
) -> RenderedLibrary:
    """Render the library. ``migrations`` sets the schema version it expects (tests use this)."""
    base = lua_base or lua_dir()
    specs = load_specs(base)
    schema_version = max(
        (m.number for m in list_migrations(migrations or migrations_dir())), default=0
    )
    context = {
        "library_name": LIBRARY_NAME,
        "version": version,
        "schema_version": schema_version,
        "consumer_group": CONSUMER_GROUP,
        "error_codes": _enum_table(ErrorCode),
        "task_states": _enum_table(TaskState),
        "priorities": [priority.value for priority in Priority],
        "workflow_states": _enum_table(WorkflowState),
        "step_states": _enum_table(StepState),
        "workflow_policies": _enum_table(WorkflowPolicy),
        "limits": LIMITS,
        "defaults": DEFAULTS,
        "functions": [
            {"name": spec.name, "path": spec.path, "flags": list(spec.flags)}
            for spec in specs.values()
        ],
    }
    template = _environment(base).get_template("library.lua.j2")
    unsigned = template.render(code_sha="", **context)
    unlisted = [
        p.name
        for p in sorted((base / "includes").glob("*.lua"))
        if f"-- include: includes/{p.name}\n" not in unsigned
    ]
    if unlisted:
        raise AgentfnError(
            f"library.lua.j2 does not include {', '.join(unlisted)}: add it to its list of includes"
        )
    code_sha = hashlib.sha256(unsigned.encode("utf-8")).hexdigest()
    source = template.render(code_sha=code_sha, **context)
    return RenderedLibrary(
        source=source, version=version, code_sha=code_sha, schema_version=schema_version
    )
