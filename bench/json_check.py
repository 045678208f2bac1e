"""The cost of strict JSON per call: JSON.check (lua/includes/strict_json.lua) against the check
it replaced (pcall(cjson.decode) plus a pattern), on 1 KiB, 64 KiB and 1 MiB payloads.

Loads a scratch library holding three functions on a private redis-server: ``noop`` (the FCALL
itself: argument transfer, dispatch), ``old`` (the former check_json body) and ``new`` (JSON.check,
the include as shipped, with the few constants it needs), calls each with every payload and
reports the server's microseconds per call (INFO commandstats, FCALL) minus ``noop``'s. Then the
whole agentfn_task_submit of the shipped library with the same payloads, for scale (those within
its ``json_bytes`` limit: a larger payload is refused before the check runs).

    .venv/bin/python bench/json_check.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import agentfn  # noqa: E402
from agentfn.constants import LIMITS  # noqa: E402
from agentfn.library.paths import lua_dir  # noqa: E402
from agentfn.server import EmbeddedRedis  # noqa: E402

SCRATCH = """#!lua name=jsonbench
local ERR = {BADARG = 'BADARG'}
local LIMITS = {json_depth = 128}
local function raise(code, message) error({err = code .. ' ' .. message}, 0) end
%s
local function old_check(value)
  local ok = pcall(cjson.decode, value)
  if not ok then raise(ERR.BADARG, 'not valid JSON') end
  return string.find(value, '^%%s*{') ~= nil
end
redis.register_function('noop', function(keys, args) return 1 end)
redis.register_function('old', function(keys, args) old_check(args[1]) return 1 end)
redis.register_function('new', function(keys, args) JSON.check(args[1], 'payload') return 1 end)
"""


def payloads() -> dict[str, str]:
    """1 KiB: a typical task payload; 64 KiB: records and non-ASCII text at the library's
    json_bytes limit; 1 MiB: records, one long ASCII string, non-ASCII text (the check alone: over
    the limit)."""
    record = {
        "query": "redis functions and lua scripting",
        "options": {"depth": 3, "lang": "en", "safe": True, "tags": ["a", "b", "c"]},
        "score": -12.5e-3,
        "note": 'quoted "text" with \\ escapes\n',
        "n": None,
    }
    small = {"items": [record] * 3, "text": "x" * 300}
    small_text = json.dumps(small)
    small_text = small_text[:-1] + ',"pad":"' + "p" * (1024 - len(small_text) - 10) + '"}'
    records = json.dumps({"items": [record] * 5_200})
    return {
        "1 KiB object": small_text,
        "64 KiB object (315 records)": json.dumps({"items": [record] * 315}),
        "64 KiB non-ASCII text": json.dumps("é€" * 13_000, ensure_ascii=False),
        "1 MiB object (5,200 records)": records,
        "1 MiB ASCII string": json.dumps("a" * 1_048_000),
        "1 MiB non-ASCII text": json.dumps("é€" * 209_000, ensure_ascii=False),
    }


def usec_per_call(connection: redis.Redis, calls: list[tuple[Any, ...]], repeats: int = 3) -> float:
    """The server's µs per call (INFO commandstats, FCALL), the lowest of ``repeats`` rounds."""
    best = float("inf")
    for _ in range(repeats):
        connection.config_resetstat()
        pipe = connection.pipeline(transaction=False)
        for index, call in enumerate(calls):
            pipe.execute_command(*call)
            if index % 50 == 49:
                pipe.execute()
        pipe.execute()
        stats = connection.info("commandstats")["cmdstat_fcall"]
        best = min(best, int(stats["usec"]) / int(stats["calls"]))
    return best


def run(calls: int = 2_000) -> dict[str, Any]:
    """bench/run.py's entry point: figures per payload and a details table."""
    include = (lua_dir() / "includes" / "strict_json.lua").read_text(encoding="utf-8")
    rows = []
    with EmbeddedRedis() as server:
        connection = redis.Redis(host=server.host, port=server.port)
        connection.execute_command("FUNCTION", "LOAD", "REPLACE", SCRATCH % include)
        agentfn.deploy(connection, "bench")
        root = "agentfn:{bench}"
        for name, text in payloads().items():
            count = calls if len(text) < 10_000 else max(calls // 100, 10)
            figures = {}
            for function in ("noop", "old", "new"):
                figures[function] = usec_per_call(
                    connection, [("FCALL", function, 0, text)] * count
                )
            submit = None
            if len(text.encode()) <= LIMITS["json_bytes"]:
                submit = usec_per_call(
                    connection, [("FCALL", "agentfn_task_submit", 1, root, "cap", text)] * count, 1
                )
            stale = [key for key in connection.keys(root + ":*") if not key.endswith(b":meta")]
            if stale:
                connection.delete(*stale)
            rows.append((name, len(text.encode()), figures, submit))
        connection.close()
    lines = [
        "| payload | bytes | old check µs | strict check µs | strict - old µs | FCALL alone µs | "
        "agentfn_task_submit µs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    result: dict[str, Any] = {}
    for name, size, figures, submit in rows:
        old = figures["old"] - figures["noop"]
        new = figures["new"] - figures["noop"]
        lines.append(
            f"| {name} | {size:,} | {old:,.1f} | {new:,.1f} | {new - old:+,.1f} | "
            f"{figures['noop']:,.1f} | {'over the limit' if submit is None else f'{submit:,.1f}'} |"
        )
        result[f"{name}: strict check (µs)"] = round(new, 1)
        result[f"{name}: old check, cjson.decode (µs)"] = round(old, 1)
    result["details"] = (
        "Server µs per call (INFO commandstats, lowest of 3 rounds), FCALL alone subtracted:\n\n"
    )
    result["details"] += "\n".join(lines)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--calls", type=int, default=2_000, help="calls per 1 KiB figure (1 MiB: /100)"
    )
    options = parser.parse_args()
    print(run(options.calls)["details"])


if __name__ == "__main__":
    main()
