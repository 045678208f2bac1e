"""The rendered library, the function headers and docs/PROTOCOL.md agree with each other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis

from agentfn.errors import ErrorCode
from agentfn.library import protocol_doc
from agentfn.library.protocol import HeaderError, load_specs, parse_header
from agentfn.library.render import lua_literal, render_library

from .helpers import ROOT

DOC = Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md"
LUA_FUNCTIONS = Path(__file__).resolve().parent.parent / "lua" / "functions"


def registered_functions(r: redis.Redis) -> dict[str, list[str]]:
    """Function name -> flags, as FUNCTION LIST reports them (redis-py parses the reply into dicts)."""
    (library,) = [
        lib
        for lib in r.execute_command("FUNCTION", "LIST", "LIBRARYNAME", "agentfn")
        if lib["library_name"] == "agentfn"
    ]
    return {fn["name"]: sorted(fn["flags"]) for fn in library["functions"]}


def test_every_function_file_is_registered_with_its_flags(deployed):
    registered = registered_functions(deployed)
    specs = load_specs()
    assert sorted(registered) == sorted(specs)
    for name, spec in specs.items():
        assert registered[name] == sorted(spec.flags), name


def test_every_registered_function_is_documented(deployed):
    text = DOC.read_text()
    for name in registered_functions(deployed):
        assert f"### `{name}`" in text, f"{name} is missing from docs/PROTOCOL.md"


def test_generated_reference_is_current():
    text = DOC.read_text()
    _, marker, generated = text.partition(protocol_doc.MARKER)
    assert marker, "docs/PROTOCOL.md lost its generated-section marker"
    assert marker + generated == protocol_doc.render_reference(), (
        "docs/PROTOCOL.md is stale: run `make protocol` (agentfn protocol --write docs/PROTOCOL.md)"
    )


def test_every_error_code_is_documented():
    text = DOC.read_text()
    for code in ErrorCode:
        assert f"| `{code.value}` |" in text


@pytest.mark.parametrize("name", sorted(load_specs()))
def test_header_keys_match_the_code(deployed, name):
    """The header's KEYS count is what the function reads, and other key counts are refused."""
    spec = load_specs()[name]
    body = (LUA_FUNCTIONS / f"{name}.lua").read_text()
    used = {int(i) for i in re.findall(r"KEYS\[(\d+)\]", body.split("\nlocal function", 1)[1])}
    uses_root_check = "check_root(keys)" in body
    assert uses_root_check or used, f"{name} never reads its keys"
    assert len(spec.keys) == (1 if uses_root_check else max(used))
    assert [p.name for p in spec.keys] == ["root"]
    command = "FCALL_RO" if spec.read_only else "FCALL"
    for wrong in ([], [ROOT, ROOT]):
        with pytest.raises(redis.ResponseError, match="^BADARG expected 1 key"):
            deployed.execute_command(command, name, len(wrong), *wrong)


@pytest.mark.parametrize("name", sorted(load_specs()))
def test_header_errors_are_known_codes(name):
    spec = load_specs()[name]
    assert spec.errors, f"{name} lists no error codes"
    assert set(spec.errors) <= {c.value for c in ErrorCode}
    assert spec.example.startswith(("FCALL ", "FCALL_RO ")) and f" {name} 1 " in spec.example


def test_header_parser_rejects_malformed_blocks():
    with pytest.raises(HeaderError):
        parse_header("local x = 1\n", "functions/x.lua")
    with pytest.raises(HeaderError, match="out of order"):
        parse_header(
            "-- agentfn_x: s\n--\n-- flags: none\n-- KEYS[2] root: r\n", "functions/agentfn_x.lua"
        )


def test_render_is_reproducible_and_signed(library):
    again = render_library()
    assert again.source == library.source
    assert re.fullmatch(r"[0-9a-f]{64}", library.code_sha)
    assert f"local CODE_SHA = '{library.code_sha}'" in library.source
    assert library.source.startswith("#!lua name=agentfn\n")
    # The sha covers the text rendered with an empty CODE_SHA: anyone can recompute it.
    import hashlib

    unsigned = library.source.replace(library.code_sha, "")
    assert hashlib.sha256(unsigned.encode()).hexdigest() == library.code_sha


def test_constants_come_from_python(library):
    for code in ErrorCode:
        assert f"{code.name} = '{code.value}'" in library.source


@pytest.mark.parametrize(
    "value,expected",
    [
        ("a'b\\c\n", "'a\\039b\\092c\\010'"),
        (5, "5"),
        (True, "true"),
        (["x", 1], "{'x', 1}"),
        ({"b": 1, "a": "z"}, "{a = 'z', b = 1}"),
    ],
)
def test_lua_literal(value, expected):
    assert lua_literal(value) == expected


def test_lua_literal_refuses_non_identifier_keys():
    with pytest.raises(ValueError):
        lua_literal({"not ok": 1})
