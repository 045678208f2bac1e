"""The protocol as the Lua sources declare it: one header block per function file.

Each file in ``lua/functions/`` starts with a comment block (see any of them) that names the
function, states its invariant, and lists ``flags``, ``KEYS[i]``, ``ARGV[i]``, ``OPTION NAME value``,
``returns``, ``errors``, ``events`` and ``example``. This module parses those blocks; the renderer
registers functions from them, the client checks its calls against them, and docs/PROTOCOL.md
is generated from them, so the three cannot drift apart.

A function that takes many items names its first positional ``ARGV[1] count``: ``count`` items
follow, each of the other ARGV entries in turn (FunctionSpec.item_args of them per item).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AgentfnError
from .paths import lua_dir


@dataclass(frozen=True)
class Param:
    """One KEYS[i] or ARGV[i] entry, or one option."""

    name: str
    description: str
    value: str = ""
    """For options: the name of the option's value (``ms``, ``json``...)."""


@dataclass(frozen=True)
class FunctionSpec:
    """What a function's header block declares."""

    name: str
    summary: str
    description: str
    path: str
    """Path relative to lua/ (used as a jinja2 include)."""
    flags: tuple[str, ...]
    keys: tuple[Param, ...]
    argv: tuple[Param, ...]
    options: tuple[Param, ...]
    returns: str
    errors: tuple[str, ...]
    events: str
    example: str
    option_names: frozenset[str] = field(default=frozenset())

    @property
    def read_only(self) -> bool:
        """True when the function is registered with the no-writes flag (callable by FCALL_RO)."""
        return "no-writes" in self.flags

    @property
    def item_args(self) -> int:
        """For a function that takes many items (``ARGV[1] count``, then ``count`` groups of the
        other ARGV entries): the arguments of one item; 0 for any other function."""
        return len(self.argv) - 1 if self.argv and self.argv[0].name == "count" else 0


_ITEM = re.compile(
    r"^(?:(?P<kind>KEYS|ARGV)\[(?P<index>\d+)\] (?P<pname>\w+): (?P<pdesc>.*)"
    r"|OPTION (?P<oname>[A-Z_]+) (?P<ovalue>\S+): (?P<odesc>.*)"
    r"|(?P<field>flags|returns|errors|events|example): ?(?P<fvalue>.*))$"
)


class HeaderError(AgentfnError, ValueError):
    """A function file's header block is malformed (the library cannot be rendered)."""


def parse_header(text: str, path: str) -> FunctionSpec:
    """Parse the comment block at the top of one function file."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[3:] if line.startswith("-- ") else line[2:])
    if not lines:
        raise HeaderError(f"{path}: no header block")
    name, _, summary = lines[0].partition(": ")
    if not re.fullmatch(r"agentfn_[a-z_]+", name) or not summary:
        raise HeaderError(f"{path}: the first line must be '-- agentfn_<name>: <summary>'")
    description: list[str] = []
    items: list[list[str]] = []  # [kind, name, value, description]
    fields: dict[str, str] = {"flags": "", "returns": "", "errors": "", "events": "", "example": ""}
    last: list[str] | None = None
    last_field: str | None = None
    for line in lines[1:]:
        match = _ITEM.match(line)
        if match and match["kind"]:
            if int(match["index"]) != sum(1 for item in items if item[0] == match["kind"]) + 1:
                raise HeaderError(f"{path}: {match['kind']}[{match['index']}] is out of order")
            last, last_field = [match["kind"], match["pname"], "", match["pdesc"]], None
            items.append(last)
        elif match and match["oname"]:
            last, last_field = ["OPTION", match["oname"], match["ovalue"], match["odesc"]], None
            items.append(last)
        elif match and match["field"]:
            last, last_field = None, match["field"]
            fields[last_field] = match["fvalue"]
        elif line.startswith("  ") and (last is not None or last_field is not None):
            if last is not None:
                last[3] += " " + line.strip()
            else:
                assert last_field is not None
                fields[last_field] += " " + line.strip()
        elif not items and last_field is None:
            description.append(line)
        elif line.strip():
            raise HeaderError(f"{path}: cannot read header line {line!r}")
    flags = tuple(flag for flag in fields["flags"].replace(",", " ").split() if flag != "none")
    options = tuple(Param(i[1], i[3], i[2]) for i in items if i[0] == "OPTION")
    return FunctionSpec(
        name=name,
        summary=summary,
        description=" ".join(" ".join(description).split()),
        path=path,
        flags=flags,
        keys=tuple(Param(i[1], i[3]) for i in items if i[0] == "KEYS"),
        argv=tuple(Param(i[1], i[3]) for i in items if i[0] == "ARGV"),
        options=options,
        returns=fields["returns"],
        errors=tuple(code.strip() for code in re.findall(r"[A-Z]{3,}", fields["errors"])),
        events=fields["events"],
        example=fields["example"],
        option_names=frozenset(option.name for option in options),
    )


@functools.lru_cache(maxsize=4)
def load_specs(directory: Path | None = None) -> dict[str, FunctionSpec]:
    """Every function's spec, by name, in file-name order."""
    base = directory or lua_dir()
    specs: dict[str, FunctionSpec] = {}
    for path in sorted((base / "functions").glob("*.lua")):
        spec = parse_header(path.read_text(encoding="utf-8"), f"functions/{path.name}")
        if spec.name != path.stem:
            raise HeaderError(f"{path}: header names {spec.name}, the file is {path.stem}")
        specs[spec.name] = spec
    return specs


def agent_functions() -> frozenset[str]:
    """The functions an agent calls as itself (protocol 3.0): those whose second positional
    argument, after ``agent_id``, is its ``secret`` (read from the headers)."""
    return frozenset(
        name
        for name, spec in load_specs().items()
        if [param.name for param in spec.argv[:2]] == ["agent_id", "secret"]
    )
