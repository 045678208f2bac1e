"""Assertions shared by the test modules."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import redis

from agentfn.client.status import server_ms
from agentfn.library.paths import lua_dir
from agentfn.library.protocol import agent_functions
from agentfn.library.render import render_library

ROOT = "agentfn:{default}"


def snapshot(raw: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key of the server with its DUMP: equal snapshots mean a byte-for-byte equal keyspace."""
    return {key: raw.dump(key) for key in sorted(raw.scan_iter(count=1000))}


#: The functions an agent calls as itself: its secret follows its id (protocol 3.0).
AGENT_FUNCTIONS = agent_functions()


def secret_of(agent_id: str) -> str:
    """The secret the raw-FCALL tests register an agent with (protocol 3.0): 32 hex digits
    derived from its id, so that every helper and test can present it."""
    return hashlib.sha1(f"test-secret:{agent_id}".encode()).hexdigest()[:32]


def fcall(r: redis.Redis, function: str, *args: Any, keys: tuple[str, ...] = (ROOT,)) -> Any:
    """FCALL exactly as another language would: numkeys, keys, then plain string arguments."""
    return r.execute_command("FCALL", function, len(keys), *keys, *[str(a) for a in args])


def assert_refused(
    r: redis.Redis,
    raw: redis.Redis,
    code: str,
    function: str,
    *args: Any,
    keys: tuple[str, ...] = (ROOT,),
) -> str:
    """The call fails with the coded error and leaves the keyspace byte-for-byte unchanged."""
    before = snapshot(raw)
    with pytest.raises(redis.ResponseError) as info:
        fcall(r, function, *args, keys=keys)
    message = str(info.value)
    assert message.split(" ", 1)[0] == code, message
    assert snapshot(raw) == before, f"{function} wrote despite refusing with {message}"
    return message


def pairs(flat: list[Any]) -> dict[str, Any]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def wait_until(r: redis.Redis, server_time_ms: int) -> None:
    """Wait on the server's clock (no sleep): block on a list nobody writes until the time passes."""
    while (remaining := server_time_ms - server_ms(r)) >= 0:
        r.blpop(["agentfn-test:never"], timeout=(remaining + 2) / 1000)


def strict_json_ok(text: bytes) -> bool:
    """The test's own oracle of RFC 8259 JSON without duplicate keys or lone surrogates."""

    def no_duplicates(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in items]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate key")
        return dict(items)

    def reject(name: str) -> Any:
        raise ValueError(name)

    def clean(value: Any) -> bool:
        if isinstance(value, str):
            return not any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
        if isinstance(value, list):
            return all(clean(item) for item in value)
        if isinstance(value, dict):
            return all(clean(key) and clean(item) for key, item in value.items())
        return True

    try:
        decoded = text.decode("utf-8")
        value = json.loads(decoded, object_pairs_hook=no_duplicates, parse_constant=reject)
    except (ValueError, RecursionError):
        return False
    return clean(value) and decoded.strip(" \t\n\r") == decoded.strip()


def planted_library(tmp_path: Path, functions: dict[str, str]) -> str:
    """The library rendered from a copy of lua/ with test-only functions planted in it: name ->
    Lua body, run with `keys` and `args`, then `return 1` (a body returns early in a do block)."""
    base = tmp_path / "lua"
    shutil.copytree(lua_dir(), base)
    for name, body in functions.items():
        (base / "functions" / f"{name}.lua").write_text(
            f"-- {name}: planted by a test.\n--\n-- flags: none\n"
            f"-- KEYS[1] root: the namespace root key\n-- returns: anything\n-- errors: INTERNAL\n"
            f"-- example: FCALL {name} 1 agentfn:{{default}}\n"
            f"local function {name}(keys, args)\n  {body}\n  return 1\nend\n",
            encoding="utf-8",
        )
    return render_library(lua_base=base).source
