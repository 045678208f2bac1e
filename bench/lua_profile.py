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

``--lifecycle`` measures the shipped library instead (no probes): per function, the FCALL's
usec_per_call and the redis.calls it made (INFO commandstats), and the Redis CPU per task
(INFO used_cpu_sys + used_cpu_user) over whole lifecycles (submit, claim, complete), one at a
time and batched (a pipeline of completes, and with a library that has it one
agentfn_task_complete_many per round trip; with one that has agentfn_task_submit_many too, the
submits one such call per round trip as well). ``--compare REV`` runs the same figures for lua/ as
of git revision REV (e.g. HEAD; several, comma-separated) on the same private server,
interleaved with this checkout's, to show a change's effect:
``.venv/bin/python bench/lua_profile.py --lifecycle --compare HEAD``.
``--traced`` adds a column for this checkout with every task submitted with a TRACEPARENT (what
an OpenTelemetry-traced submitter sends), to show what carrying the trace context costs.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import agentfn  # noqa: E402
from agentfn.constants import LIMITS  # noqa: E402
from agentfn.library.paths import lua_dir  # noqa: E402
from agentfn.library.render import render_library  # noqa: E402
from agentfn.server import EmbeddedRedis  # noqa: E402

PROBES = """local PROF = {acc = {}, last = 0}
function PROF.us() local t = redis.call('TIME') return tonumber(t[1]) * 1000000 + tonumber(t[2]) end
function PROF.mark(name)
  local us = PROF.us()
  if name then PROF.acc[name] = (PROF.acc[name] or 0) + (us - PROF.last) end
  PROF.last = us
end
function PROF.add(name, since) PROF.acc[name] = (PROF.acc[name] or 0) + (PROF.us() - since) end
"""

DUMP = """-- agentfn_prof_dump: the probes' totals (profiling copy only), then reset.
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
"""

#: (file under lua/, the start of the one line to find, text to put before it, text to put after it)
EDITS = [
    ("includes/clock.lua", "local function now_ms()", PROBES, ""),
    ("includes/emit.lua", "local function emit(", "", "  local prof_t0 = PROF.us()"),
    (
        "includes/emit.lua",
        "    unpack(fields))",
        "",
        "  PROF.add('(within the above) emit: XADD events', prof_t0)",
    ),
    ("includes/task_claim.lua", "function TASK.take(", "", "  local prof_t0 = PROF.us()"),
    (
        "includes/task_claim.lua",
        "  emit(",
        "",
        "  PROF.add('(within the above) TASK.take: HMGET, HSET, emit', prof_t0)",
    ),
    (
        "includes/task_claim.lua",
        "  TASK.promote_due(root",
        "",
        "  PROF.mark('c7 claim: promote_due (ZRANGE)')",
    ),
    (
        "includes/task_claim.lua",
        "  if #claim.tasks >= count then",
        "  PROF.mark('c8 claim: read direct + queue streams (SMISMEMBER, XREADGROUP, TASK.take, ZADD)')",
        "",
    ),
    (
        "functions/agentfn_task_complete.lua",
        "  local root, namespace = check_root(keys)",
        "  PROF.mark(nil)",
        "",
    ),
    # SETTLE.open_attempt: the rest of the prologue of agentfn_task_complete (and agentfn_task_fail)
    (
        "includes/settle.lua",
        "  check_schema(root, namespace)",
        "  PROF.mark('c1 validate arguments')",
        "  PROF.mark('c2 check_schema (MGET)')",
    ),
    (
        "functions/agentfn_task_complete.lua",
        "  local now = ",
        "  PROF.mark('c3 SETTLE.load (HMGET) + check_token')",
        "",
    ),
    (
        "functions/agentfn_task_complete.lua",
        "  local state = STATE.CANCELED",
        "  PROF.mark('c4 now_ms (TIME) + live_agent (HMGET)')",
        "",
    ),
    (
        "functions/agentfn_task_complete.lua",
        "    TASK.unlink(root, task_id, task)",
        "",
        "    PROF.mark('c5 unlink (XACK, ZREM)')",
    ),
    (
        "functions/agentfn_task_complete.lua",
        "  return SETTLE.reply(",
        "  PROF.mark('c6 settle: finish (HSET, PEXPIRE, emit)')",
        "",
    ),
    (
        "functions/agentfn_task_submit.lua",
        "  local root, namespace = check_root(keys)",
        "  PROF.mark(nil)",
        "",
    ),
    (
        "functions/agentfn_task_submit.lua",
        "  check_schema(root, namespace)",
        "  PROF.mark('s1 validate arguments')",
        "  PROF.mark('s2 check_schema (MGET)')",
    ),
    (
        "includes/task_core.lua",
        "  emit(root, 'task.submitted'",
        "  PROF.mark('s3 create_task: HINCRBY, XADD (enqueue), HSET')",
        "  PROF.mark('s4 emit task.submitted')",
    ),
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
        lines[index : index + 1] = [part for part in (before, lines[index], after) if part]
        path.write_text("\n".join(lines), encoding="utf-8")
    (target / "functions" / "agentfn_prof_dump.lua").write_text(DUMP, encoding="utf-8")
    return target


def _dump(connection: redis.Redis, root: str) -> dict[str, int]:
    flat = connection.execute_command("FCALL", "agentfn_prof_dump", 1, root)
    return {flat[index]: int(flat[index + 1]) for index in range(0, len(flat), 2)}


def drain_one_at_a_time(
    client: agentfn.Client, agent_id: str, before: Callable[[], Any] = lambda: None
) -> None:
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
    for title, totals in (
        ("agentfn_task_submit", submit),
        ("agentfn_task_complete NEXT 1", complete),
    ):
        rows.append(
            f"| **{title}** | **{sum(v for k, v in totals.items() if not k.startswith('(')) / count:.1f}** |"
        )
        ordered = sorted(totals.items(), key=lambda item: (item[0].startswith("("), item[0]))
        rows += [f"| {name} | {total / count:.1f} |" for name, total in ordered]
    return "\n".join(rows)


# -- whole lifecycles on the shipped library (no probes) ---------------------------------------

#: Tasks per pipeline and the claim COUNT of the batched lifecycle.
BATCH = 100
#: The trace context of --traced submits (a W3C traceparent).
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#: Commands of ours that show in INFO commandstats besides the library's.
_OWN_COMMANDS = {"fcall", "info", "config|resetstat"}


def library_source(revision: str | None = None) -> str:
    """The library rendered from this checkout's lua/ or, with ``revision``, from lua/ as of that
    git revision (read with git archive; the working tree is not touched)."""
    if revision is None:
        return render_library().source
    repository = lua_dir().parent
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "lua"],
        cwd=repository,
        capture_output=True,
        check=True,
    ).stdout
    with tempfile.TemporaryDirectory() as scratch:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(scratch)
        return render_library(lua_base=Path(scratch) / "lua").source


class Span:
    """INFO commandstats and Redis CPU over a span of calls (the stats are reset at the start)."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        connection.config_resetstat()
        self.cpu = self._cpu()

    def _cpu(self) -> float:
        info = self.connection.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def stop(self) -> tuple[dict[str, tuple[int, int]], float]:
        """(command -> (calls, usec)), CPU seconds."""
        cpu = self._cpu() - self.cpu
        stats = {
            name[len("cmdstat_") :]: (int(v["calls"]), int(v["usec"]))
            for name, v in self.connection.info("commandstats").items()
        }
        return stats, cpu


def _inner_calls(stats: dict[str, tuple[int, int]]) -> dict[str, int]:
    return {name: calls for name, (calls, _) in stats.items() if name not in _OWN_COMMANDS}


def _submit(
    client: agentfn.Client,
    count: int,
    pipelined: bool,
    traceparent: str | None = None,
    many: bool = False,
) -> None:
    """Submit ``count`` no-op tasks: one call a round trip, or by BATCH a round trip (a pipeline
    of submits, or with ``many`` one agentfn_task_submit_many)."""
    if not pipelined:
        for _ in range(count):
            client.submit("noop", None, traceparent=traceparent)
        return
    for start in range(0, count, BATCH):
        if many:
            items = [("noop", None)] * min(BATCH, count - start)
            client.submit_many(items, traceparent=traceparent)
            continue
        batch = agentfn.Batch(client)
        for _ in range(min(BATCH, count - start)):
            batch.submit("noop", None, traceparent=traceparent)
        batch.execute()


def drain_batched(client: agentfn.Client, agent_id: str, many: bool = False) -> None:
    """Claim COUNT 100 (at most the claim limit), then complete the claimed tasks, NEXT as many,
    until the queue is empty: in one pipeline of completes whose last call carries NEXT, or with
    ``many`` in one agentfn_task_complete_many (as the runtime does at concurrency 100)."""
    count = min(BATCH, LIMITS["claim_count"])
    tasks = client.claim(agent_id, count).tasks
    while tasks:
        if many:
            done = client.complete_many([(task.id, task.token, None) for task in tasks], next=count)
            tasks = done.next.tasks if done.next else []
            continue
        batch = agentfn.Batch(client)
        for index, task in enumerate(tasks):
            batch.complete(task.id, task.token, None, next=count if index == len(tasks) - 1 else 0)
        tasks = batch.execute()[-1].next.tasks


def lifecycle(
    connection: redis.Redis, source: str, count: int, traceparent: str | None = None
) -> dict[str, float]:
    """Load ``source`` on ``connection`` (a private server: it is flushed) and measure: per
    function, usec_per_call and redis.calls per call (a claim that finds nothing included); per
    task, redis.calls and Redis CPU µs over whole lifecycles, one at a time (submit; complete
    NEXT 1) and batched (pipelined submits; claim COUNT 100 and pipelined completes, the last
    with NEXT 100), each followed by one agentfn_reap (its share of the work). Every task is
    submitted with ``traceparent`` (None: without)."""
    connection.flushall()
    connection.function_load(source, replace=True)
    agentfn.migrate(connection, "profile")
    client = agentfn.Client(connection, "profile", check_library=False)
    client.agent_register("profiler", ["noop"], ttl_ms=3_600_000)
    figures: dict[str, float] = {}

    def per_call(title: str, run: Callable[[], Any]) -> None:
        span = Span(connection)
        run()
        stats, _ = span.stop()
        calls, usec = stats["fcall"]
        figures[f"{title}: usec_per_call"] = usec / calls
        figures[f"{title}: redis.calls per call"] = sum(_inner_calls(stats).values()) / calls

    per_call("submit", lambda: _submit(client, count, False, traceparent))
    claimed: list[Any] = []
    per_call(
        "claim COUNT 1",
        lambda: claimed.extend(client.claim("profiler").tasks[0] for _ in range(count)),
    )
    per_call("complete", lambda: [client.complete(task.id, task.token, None) for task in claimed])
    _submit(client, count, False, traceparent)
    first = client.claim("profiler").tasks[0]

    def complete_next(task: Any = first) -> None:
        while task is not None:
            following = client.complete(task.id, task.token, None, next=1).next.tasks
            task = following[0] if following else None

    per_call("complete NEXT 1", complete_next)
    # An idle agent's claim: every stream it reads exists (direct, and noop at each priority).
    for priority in ("high", "low"):
        client.submit("noop", None, priority=priority)
    client.submit("noop", None, to="profiler")
    complete_next(client.claim("profiler").tasks[0])
    per_call("claim, nothing ready", lambda: [client.claim("profiler") for _ in range(count)])

    def whole(title: str, run: Callable[[], None]) -> None:
        span = Span(connection)
        run()
        client.reap()  # its share: trimming what the lifecycles left in the streams
        stats, cpu = span.stop()
        figures[f"{title}: redis.calls per task"] = sum(_inner_calls(stats).values()) / count
        figures[f"{title}: Redis CPU µs per task"] = cpu / count * 1e6

    whole(
        "lifecycle one at a time",
        lambda: (
            _submit(client, count, False, traceparent),
            drain_one_at_a_time(client, "profiler"),
        ),
    )
    whole(
        "lifecycle batched",
        lambda: (_submit(client, count, True, traceparent), drain_batched(client, "profiler")),
    )
    if "function_name = 'agentfn_task_complete_many'" in source:  # the library has it
        whole(
            "lifecycle batched, complete_many",
            lambda: (
                _submit(client, count, True, traceparent),
                drain_batched(client, "profiler", many=True),
            ),
        )
    if "function_name = 'agentfn_task_submit_many'" in source:  # the library has it
        whole(
            "lifecycle batched, submit_many and complete_many",
            lambda: (
                _submit(client, count, True, traceparent, many=True),
                drain_batched(client, "profiler", many=True),
            ),
        )
    connection.flushall()
    return figures


def compare(
    connection: redis.Redis,
    sources: dict[str, tuple[str, str | None]],
    count: int,
    repeats: int,
) -> str:
    """``lifecycle`` for each named (library, traceparent), ``repeats`` rounds interleaved; a
    markdown table of the lowest of each figure (other work on the machine only adds to a time;
    counts do not vary)."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sources}
    for _ in range(repeats):
        for name, (source, traceparent) in sources.items():
            runs[name].append(lifecycle(connection, source, count, traceparent))
    names = list(sources)
    rows = [f"| figure | {' | '.join(names)} |", "| --- |" + " ---: |" * len(names)]
    figures = list(dict.fromkeys(figure for name in names for figure in runs[name][0]))
    for figure in figures:
        cells = []
        for name in names:
            if figure not in runs[name][0]:  # a library without the function it measures
                cells.append("-")
                continue
            value = min(run[figure] for run in runs[name])
            cells.append(f"{value:.2f}" if "calls" in figure else f"{value:.1f}")
        rows.append(f"| {figure} | {' | '.join(cells)} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3_000)
    parser.add_argument(
        "--lifecycle",
        action="store_true",
        help="usec_per_call, redis.calls and CPU per task of the shipped library",
    )
    parser.add_argument(
        "--compare",
        metavar="REV[,REV...]",
        help="with --lifecycle: also lua/ as of each git revision REV (e.g. experiments' commits)",
    )
    parser.add_argument(
        "--traced",
        action="store_true",
        help="with --lifecycle: also this checkout with every task submitted with a TRACEPARENT",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="with --lifecycle: rounds (the lowest figures are kept)",
    )
    options = parser.parse_args()
    with EmbeddedRedis() as server:
        connection = redis.Redis(host=server.host, port=server.port, decode_responses=True)
        if options.lifecycle:
            source = library_source()
            sources: dict[str, tuple[str, str | None]] = {"this checkout": (source, None)}
            revisions = [name for name in (options.compare or "").split(",") if name]
            sources = {name: (library_source(name), None) for name in revisions} | sources
            if options.traced:
                sources["this checkout, TRACEPARENT"] = (source, TRACEPARENT)
            print(compare(connection, sources, options.tasks, options.repeats))
        else:
            print(sections(connection, options.tasks))
        connection.close()


if __name__ == "__main__":
    main()
