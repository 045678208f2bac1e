"""docs/PROTOCOL.md's function reference, generated from the Lua header blocks.

The hand-written part of PROTOCOL.md ends at MARKER; everything after it is this module's
output (``agentfn protocol --write`` refreshes it; a test fails when it is stale).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from .protocol import FunctionSpec, load_specs

MARKER = (
    "<!-- generated from lua/functions headers by `agentfn protocol --write`; do not edit below -->"
)

_AREAS = [
    ("Meta", ("agentfn_version",)),
    ("Agent registry", ("agentfn_agent_",)),
    ("Tasks", ("agentfn_task_", "agentfn_reap")),
    ("Messages", ("agentfn_msg_",)),
    ("Workflows and shared context", ("agentfn_wf_", "agentfn_ctx_")),
]


def _section(spec: FunctionSpec) -> str:
    lines = [f"### `{spec.name}`", "", spec.summary[:1].upper() + spec.summary[1:], ""]
    if spec.description:
        lines += [spec.description, ""]
    lines.append(
        f"- Flags: {', '.join(spec.flags) if spec.flags else 'none (writes)'}; call with "
        f"`{'FCALL_RO' if spec.read_only else 'FCALL'}`."
    )
    lines.append(f"- KEYS ({len(spec.keys)}):")
    lines += [f"  {i}. `{p.name}`: {p.description}" for i, p in enumerate(spec.keys, start=1)]
    if spec.argv:
        lines.append(f"- ARGV, positional ({len(spec.argv)}):")
        lines += [f"  {i}. `{p.name}`: {p.description}" for i, p in enumerate(spec.argv, start=1)]
    else:
        lines.append("- ARGV, positional: none")
    if spec.options:
        lines.append("- Options (`NAME value` pairs after the positional values, any order):")
        lines += [f"  - `{o.name} <{o.value}>`: {o.description}" for o in spec.options]
    lines.append(f"- Returns: {spec.returns}")
    lines.append(f"- Errors: {', '.join(f'`{code}`' for code in spec.errors)}")
    if spec.events:
        lines.append(f"- Events: {spec.events}")
    lines += ["", "```", f"redis-cli {spec.example}", "```", ""]
    return "\n".join(lines)


def render_reference() -> str:
    """The generated reference: one section per function, grouped by area."""
    specs = load_specs()
    out = [MARKER, "", "## Function reference", ""]
    placed: set[str] = set()
    for title, prefixes in _AREAS:
        chosen = [s for n, s in specs.items() if n.startswith(prefixes) and n not in placed]
        if not chosen:
            continue
        out += [f"## {title}", ""]
        for spec in chosen:
            placed.add(spec.name)
            out.append(_section(spec))
    rest = [s for n, s in specs.items() if n not in placed]
    if rest:
        out += ["## Other functions", ""] + [_section(spec) for spec in rest]
    return "\n".join(out).rstrip() + "\n"


def reference_json() -> dict[str, Any]:
    """The reference as data (``agentfn protocol --json``): each function's header, parsed."""
    functions = []
    for spec in load_specs().values():
        record = asdict(spec)
        del record["option_names"]
        record["read_only"] = spec.read_only
        functions.append(record)
    return {"functions": functions}


def refresh(path: Path) -> bool:
    """Rewrite the generated part of ``path``; returns True when it changed."""
    text = path.read_text(encoding="utf-8")
    head, marker, _ = text.partition(MARKER)
    if not marker:
        raise ValueError(f"{path} has no generated-section marker")
    updated = head + render_reference()
    if updated != text:
        path.write_text(updated, encoding="utf-8")
        return True
    return False
