"""The dashboard's jinja2 environment: its templates and the filters they format values with."""

from __future__ import annotations

import json
from typing import Any

import jinja2

from ..client.formats import clock, compact_json, duration
from .activity import sparkline


def ago(ms: int | None, now_ms: int) -> str:
    """'3.2 s ago' (or 'in 3.2 s' for a time still to come)."""
    if not ms:
        return "-"
    delta = now_ms - int(ms)
    return f"{duration(delta)} ago" if delta >= 0 else f"in {duration(-delta)}"


def pretty_json(value: Any) -> str:
    """A JSON value indented for a <pre> block."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("agentfn.dashboard", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(clock=clock, duration=duration, compact=compact_json, pretty=pretty_json)
    env.globals.update(ago=ago, sparkline=sparkline)
    return env
