"""Where the Lua time of a task goes: section timings of submit and complete+NEXT.

Redis has no profiler for Lua, and INFO commandstats only splits an FCALL into the commands it
called and the rest. This renders a copy of lua/ with ``TIME`` probes inserted at the section
boundaries of agentfn_task_submit and agentfn_task_complete (and around emit and TASK.take),
plus a probe-reading function; loads it on a scratch server, runs tasks one at a time, and
reports microseconds per task by section. Each probe is one TIME call (about 0.5 µs, counted
in the section it closes). It measures an instrumented copy, never the shipped library.

The probes are placed by matching lines of the Lua sources; when the sources change so that a
line is no longer there, ``sections()`` says which and reports nothing rather than a wrong
figure. Run alone: ``.venv/bin/python bench/lua_profile.py [--tasks N]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import agentfn  # noqa: E402
from agentfn.paths import lua_dir  # noqa: E402
from agentfn.render import render_library  # noqa: E402
from agentfn.server import EmbeddedRedis  # noqa: E402

PROBES = '''local PROF = {acc = {}, last = 0}
function PROF.us() local t = redis.call('TIME') return tonumber(t[1]) * 1000000 + tonumber(t[2]) end
function PROF.mark(name)
  local us = PROF.us()
  if name then PROF.acc[name] = (PROF.acc[name] or 0) + (us - PROF.last) end
  PROF.last = us
end
function PROF.add(name, since) PROF.acc[name] = (PROF.acc[name] or 0) + (PROF.us() - since) end
'''

DUMP = '''-- agentfn_prof_dump: the probes' totals (profiling copy only), then reset.
--
-- flags: none
-- KEYS[1] root: the namespace root key
-- returns: flat: section, microseconds, ...
-- errors: BADARG
-- example: FCALL agentfn_prof_dump 1 agentfn:{default}
local function agentfn_prof_dump(keys, args)
  local out = {}
  for name, us in pairs(PROF.acc) do
    out[#out + 1] = name
    out[#out + 1] = tostring(us)
  end
  PROF.acc = {}
  return out
end
'''

#: (file under lua/, line to find, text to put before it, text to put after it)
EDITS = [
    ("includes/02_now_ms.lua", "local function now_ms()", PROBES, ""),
    ("includes/40_emit.lua", "local function emit(root, kind, fields)", "", "  local prof_t0 = PROF.us()"),
    ("includes/40_emit.lua", "  redis.call('PUBLISH', K.channel(root, 'events'), kind .. ' ' .. (fields[2] or ''))",
     "", "  PROF.add('(within the above) emit: XADD events + PUBLISH', prof_t0)"),
    ("includes/51_task_claim.lua", "function TASK.take(root, stream, entry_id, task_id, agent_id, lease_ms, now)",
     "", "  local prof_t0 = PROF.us()"),
    ("includes/51_task_claim.lua", "  emit(root, 'task.running', {'task', task_id, 'agent', agent_id})",
     "", "  PROF.add('(within the above) TASK.take: HMGET, HSET, ZADD, SADD, emit', prof_t0)"),
    ("includes/51_task_claim.lua", "  TASK.promote_due(root, now, LIMITS.promote_batch)",
     "", "  PROF.mark('c7 claim: promote_due (ZRANGE)')"),
    ("includes/51_task_claim.lua", "  if #tasks > 0 then",
     "  PROF.mark('c8 claim: read direct + queue streams (EXISTS, XREADGROUP, TASK.take)')", ""),
    ("functions/agentfn_task_complete.lua", "  local root, namespace = check_root(keys)", "  PROF.mark(nil)", ""),
    ("functions/agentfn_task_complete.lua", "  check_schema(root, namespace)",
     "  PROF.mark('c1 validate arguments')", "  PROF.mark('c2 check_schema (HGET)')"),
    ("functions/agentfn_task_complete.lua", "  local now = now_ms()", "  PROF.mark('c3 TASK.load (HMGET) + check_token')", ""),
    ("functions/agentfn_task_complete.lua", "  local state = STATE.CANCELED", "  PROF.mark('c4 now_ms (TIME) + live_agent (HMGET)')", ""),
    ("functions/agentfn_task_complete.lua", "    TASK.unlink(root, task_id, task)", "",
     "    PROF.mark('c5 unlink (XACK, XDEL, ZREM, SREM)')"),
    ("functions/agentfn_task_complete.lua", "  return {'id', task_id, 'state', state, 'next', TASK.claim(", "  PROF.mark('c6 settle: finish (HSET, PEXPIRE, emit)')", ""),
    ("functions/agentfn_task_submit.lua", "  local root, namespace = check_root(keys)", "  PROF.mark(nil)", ""),
    ("functions/agentfn_task_submit.lua", "  check_schema(root, namespace)",
     "  PROF.mark('s1 validate arguments')", "  PROF.mark('s2 check_schema (HGET)')"),
    ("includes/50_task_core.lua", "  emit(root, 'task.submitted', {'task', task_id, 'state', state, 'capability', spec.capability})",
     "  PROF.mark('s3 create_task: HINCRBY, XADD (enqueue), HSET')", "  PROF.mark('s4 emit task.submitted')"),
]


def instrumented_copy(base: Path) -> Path:
    """lua/ copied under ``base`` with the probes in; AssertionError naming a line no longer found."""
    target = base / "lua"
    shutil.copytree(lua_dir(), target)
    for relative, anchor, before, after in EDITS:
        path = target / relative
        lines = path.read_text(encoding="utf-8").split("\n")
        found = [index for index, line in enumerate(lines) if line.startswith(anchor)]
        assert len(found) == 1, f"{relative}: the line {anchor!r} is not there once"
        index = found[0]
        lines[index:index + 1] = [part for part in (before, lines[index], after) if part]
        path.write_text("\n".join(lines), encoding="utf-8")
    (target / "functions" / "agentfn_prof_dump.lua").write_text(DUMP, encoding="utf-8")
    return target


def _dump(connection: redis.Redis, root: str) -> dict[str, int]:
    flat = connection.execute_command("FCALL", "agentfn_prof_dump", 1, root)
    return {flat[index]: int(flat[index + 1]) for index in range(0, len(flat), 2)}


def drain_one_at_a_time(client: agentfn.Client, agent_id: str, before: Callable[[], Any] = lambda: None) -> None:
    """Claim one task, then complete each with NEXT 1 until the queue is empty (``before`` runs
    after the first claim)."""
    task = client.claim(agent_id).tasks[0]
    before()
    while True:
        following = client.complete(task.id, task.token, None, next=1).next
        assert following is not None
        if not following.tasks:
            return
        task = following.tasks[0]


def sections(connection: redis.Redis, count: int = 3_000) -> str:
    """Load the instrumented library on ``connection`` (its functions are replaced: use a scratch
    server), run ``count`` submits and complete+NEXT 1 calls; a markdown table of µs per task."""
    with tempfile.TemporaryDirectory() as scratch:
        try:
            library = render_library(lua_base=instrumented_copy(Path(scratch)))
        except AssertionError as error:
            return f"(section profile unavailable: {error})"
    connection.flushall()
    connection.function_load(library.source, replace=True)
    agentfn.migrate(connection, "profile")
    client = agentfn.Client(connection, "profile", check_library=False)
    client.agent_register("profiler", ["noop"], ttl_ms=3_600_000)
    for _ in range(count):
        client.submit("noop", None)
    submit = _dump(connection, client.root)
    drain_one_at_a_time(client, "profiler", before=lambda: _dump(connection, client.root))
    complete = _dump(connection, client.root)
    connection.function_flush()  # leave no instrumented library behind
    rows = ["| section (µs per task, probes included) | µs |", "| --- | ---: |"]
    for title, totals in (("agentfn_task_submit", submit), ("agentfn_task_complete NEXT 1", complete)):
        rows.append(f"| **{title}** | **{sum(v for k, v in totals.items() if not k.startswith('(')) / count:.1f}** |")
        ordered = sorted(totals.items(), key=lambda item: (item[0].startswith("("), item[0]))
        rows += [f"| {name} | {total / count:.1f} |" for name, total in ordered]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3_000)
    options = parser.parse_args()
    with EmbeddedRedis() as server:
        connection = redis.Redis(host=server.host, port=server.port, decode_responses=True)
        print(sections(connection, options.tasks))
        connection.close()


if __name__ == "__main__":
    main()
