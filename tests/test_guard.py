"""The library-wide guard: a raw error, or a refusal after a write, is the coded error INTERNAL.

The shipped functions have no such defect (tests/test_adversarial.py looks for one); this test
plants defective functions in a copy of lua/ to show that the guard turns each kind into INTERNAL,
saying whether something was written.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import redis

from agentfn.library.render import render_library

from .helpers import ROOT, fcall, pairs, planted_library

DEFECTS = {
    "agentfn_zz_raw_before": "redis.call('HGET', K.meta(keys[1]), 'a', 'b', 'c')",
    "agentfn_zz_raw_after": "redis.call('SET', K.meta(keys[1]) .. ':zz', '1')\n"
    "  redis.call('HSET', K.meta(keys[1]) .. ':zz', 'f', 'v')",
    "agentfn_zz_lua_error": "local missing = nil\n  local value = missing.field",
    "agentfn_zz_raise_after": "redis.call('SET', K.meta(keys[1]) .. ':zz', '1')\n  raise(ERR.STATE, 'too late')",
    "agentfn_zz_raise_before": "redis.call('GET', K.meta(keys[1]) .. ':zz')\n  raise(ERR.STATE, 'in time')",
}


def defective_library(tmp_path: Path) -> str:
    return planted_library(tmp_path, DEFECTS)


@pytest.mark.parametrize(
    ("function", "written", "detail"),
    [
        ("agentfn_zz_raw_before", False, "Wrong number of args"),
        ("agentfn_zz_raw_after", True, "WRONGTYPE"),
        ("agentfn_zz_lua_error", False, "attempt to index"),
        ("agentfn_zz_raise_after", True, "STATE too late"),
    ],
)
def test_defects_become_internal(
    r: redis.Redis, tmp_path: Path, function: str, written: bool, detail: str
) -> None:
    r.execute_command("FUNCTION", "LOAD", "REPLACE", defective_library(tmp_path))
    with pytest.raises(redis.ResponseError) as info:
        r.execute_command("FCALL", function, 1, ROOT)
    message = str(info.value)
    assert message.startswith("INTERNAL internal defect, "), message
    assert ("after a write" in message) is written, message
    assert ("nothing was written" in message) is not written, message
    assert detail in message, message


def test_a_refusal_before_any_write_keeps_its_code(r: redis.Redis, tmp_path: Path) -> None:
    r.execute_command("FUNCTION", "LOAD", "REPLACE", defective_library(tmp_path))
    with pytest.raises(redis.ResponseError, match=r"^STATE in time$"):
        r.execute_command("FCALL", "agentfn_zz_raise_before", 1, ROOT)


def test_the_library_uses_only_the_api_fields_the_guard_passes_on() -> None:
    """guard.lua shadows `redis` with call, error_reply, sha1hex (the agent secrets' and claim
    tokens' hashes) and register_function only."""
    used = set(re.findall(r"\bredis\.(\w+)", render_library().source))
    assert used <= {"call", "error_reply", "sha1hex", "register_function"}, used
    assert "sha1hex" in used  # only hashes of secrets and tokens are stored


def test_the_guard_passes_sha1hex_on(deployed: redis.Redis) -> None:
    """The shadowed redis.sha1hex is Redis's own: the token a claim returns is derived with it."""
    secret = "s" * 32
    fcall(deployed, "agentfn_agent_register", "guarded", secret, "cap")
    task_id = pairs(fcall(deployed, "agentfn_task_submit", "cap", "{}"))["id"]
    (task,) = pairs(fcall(deployed, "agentfn_task_claim", "guarded", secret))["tasks"]
    digest = hashlib.sha1(f"{secret}:{task_id}:1".encode()).hexdigest()
    assert pairs(task)["token"] == f"1-{digest}"
