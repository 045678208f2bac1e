"""Task benchmark: the agent runtime over the task functions, beside a plain-Streams ceiling.

Run alone: ``.venv/bin/python bench/tasks.py [--tasks N] [--samples N] [--repeats N]``. It starts
its own redis-server (persistence off) on a free loopback port in a temporary directory, deploys
the library, measures, prints the figures and stops the server; ``run()`` returns them
(bench/run.py writes them to bench/RESULTS.md).

What is measured, all in one run on one server:

- ceiling: plain redis-py on a bare stream, no state machine: XADD single and pipelined (100 a
  pipeline); drain one entry at a time (XREADGROUP COUNT 1 with the previous XACK in the same
  pipeline: one round trip an entry) and in batches (XREADGROUP COUNT 100, then the batch's XACKs
  pipelined).
- submit: ``client.submit`` one call a round trip, and ``client.submit_many`` of 100 a round trip.
- drain: one agent process (``agentfn worker bench.tasks:noop_agent``) with a no-op handler
  draining a pre-filled queue, at concurrency 1 (one task at a time: complete with NEXT 1) and
  at concurrency 100 (claims and NEXT of up to 100, completions pipelined). The rate is the
  tasks over the span from the first start to the last finish, on the server's clock.
- round trips and Redis CPU per task: INFO ``total_reads_processed`` (reads of client input:
  one per round trip, however many commands it carried) and ``used_cpu_sys + used_cpu_user``,
  each as a delta over a task's whole life (its submit and its drain), divided by the tasks.
- commands per task: the sum of INFO commandstats calls over the same span (bench/meter.py).
- peers (bench/peers.py): Dramatiq (RedisBroker, one process, default threads) and Celery (solo
  pool, Redis broker) draining the same number of no-op tasks on the same server; a side-by-side
  table gives every system's rate, commands, round trips and Redis CPU per task life with ratios
  against Dramatiq and the batched plain-Streams ceiling (issue 13's targets are such ratios).
- latency: submit-to-start with two idle agent processes blocked in XREAD; one task at a time,
  the next submitted once both agents block again; the handler stamps ``time.time()`` at start.
- profile (details): INFO commandstats per task for submit, complete+NEXT 1 and pipelined
  completes with NEXT 100: the FCALL's own time, and the calls and time of every command the
  Lua code made, so the cost of each transition splits into Redis commands and Lua; then
  bench/lua_profile.py's section timings.

Throughputs are the best of ``--repeats`` runs (other work on the machine only slows a run
down); latency is one run of ``--samples`` after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import agentfn
from agentfn import keys
from agentfn.server import EmbeddedRedis
from bench import lua_profile, peers
from bench.meter import Meter

#: Calls per pipeline (submits, XADDs) and the batch size (claim COUNT, concurrency, XREADGROUP COUNT).
BATCH = 100
CAPABILITY = "noop"
#: The list a handler pushes to when it meets the last task of a drain / when it starts (latency).
DONE_LIST = "bench:done"
STARTED_LIST = "bench:started"

TARGETS = {
    "drain_one_at_a_time_per_s": 5_000,
    "batch_share_of_ceiling": 0.35,
    "round_trips_per_task": 2.0,
    "redis_cpu_us_per_task": 60.0,
    "latency_p50_ms": 1.0,
    "latency_p99_ms": 5.0,
    # issue 13: against Dramatiq in the same run (ratios: this machine's speed varies by day)
    "cpu_vs_dramatiq": 0.5,
    "commands_per_task": 12.0,
    "drain_one_at_a_time_vs_dramatiq": 2.0,
}


# -- the agent the drain and latency phases run in their own processes ---------------------------


def noop_agent(client: agentfn.Client) -> agentfn.Agent:
    """A no-op handler; it pushes to DONE_LIST on a task whose payload says last, and with
    payload "stamp" pushes ``<task id> <time.time()>`` to STARTED_LIST as it starts."""
    agent = agentfn.Agent(client, "bench-agent")

    @agent.handler(CAPABILITY)
    def noop(task: agentfn.TaskContext) -> None:
        if task.payload == "stamp":
            task.client.redis.rpush(STARTED_LIST, f"{task.id} {time.time()!r}")
        elif task.payload == "last":
            task.client.redis.rpush(DONE_LIST, task.id)

    return agent


def agent_process(
    url: str, namespace: str, agent_id: str, concurrency: int
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """``agentfn worker`` running noop_agent for the block."""
    return peers.running(
        [
            "agentfn",
            "worker",
            "bench.tasks:noop_agent",
            "--url",
            url,
            "--namespace",
            namespace,
            "--agent-id",
            agent_id,
            "--concurrency",
            str(concurrency),
            "--log-level",
            "WARNING",
        ]
    )


# -- measuring ---------------------------------------------------------------------------------


def fresh(connection: redis.Redis, namespace: str) -> agentfn.Client:
    """An emptied server (the library stays) with the namespace migrated."""
    connection.flushall()
    agentfn.deploy(connection, namespace)
    return agentfn.Client(connection, namespace)


def best(repeats: int, measure: Callable[[], dict[str, float]], key: str) -> dict[str, float]:
    """The run with the highest ``key`` among ``repeats`` runs."""
    return max((measure() for _ in range(repeats)), key=lambda figures: figures[key])


def _submit_all(
    client: agentfn.Client, count: int, pipelined: bool, last: str | None = None
) -> list[str]:
    payloads: list[Any] = [None] * count
    if last is not None:
        payloads[-1] = last
    if not pipelined:
        return [client.submit(CAPABILITY, payload) for payload in payloads]
    ids: list[str] = []
    for start in range(0, count, BATCH):  # one agentfn_task_submit_many a round trip
        ids.extend(client.submit_many([(CAPABILITY, p) for p in payloads[start : start + BATCH]]))
    return ids


def measure_submit(connection: redis.Redis, count: int, pipelined: bool) -> dict[str, float]:
    client = fresh(connection, "bench")
    meter = Meter(connection)
    began = time.perf_counter()
    _submit_all(client, count, pipelined)
    elapsed = time.perf_counter() - began
    return {"per_s": count / elapsed, **meter.stop().per(count)}


def _wait_drained(connection: redis.Redis, stream: str) -> int:
    """After the last task's handler ran: wait until its stream has nothing pending (the last
    completions may still be on their way); a few 1 ms waits on the server at most. Returns the
    commands sent (for the meter)."""
    for attempt in range(10_000):
        groups = connection.xinfo_groups(stream)
        if groups and groups[0]["pending"] == 0 and not groups[0]["lag"]:
            return 2 * attempt + 1
        connection.blpop(["bench:never"], timeout=0.001)
    raise RuntimeError(f"{stream} did not drain")


def measure_drain(
    connection: redis.Redis, url: str, count: int, concurrency: int
) -> dict[str, float]:
    """Pre-fill (single submits at concurrency 1, pipelined otherwise), then drain with one agent process."""
    namespace = "bench"
    client = fresh(connection, namespace)
    meter = Meter(connection)
    ids = _submit_all(client, count, pipelined=concurrency > 1, last="last")
    submitted = meter.stop()
    meter = Meter(connection)
    with agent_process(url, namespace, "bench-agent", concurrency):
        assert connection.blpop([DONE_LIST], timeout=300) is not None, (
            "the agent did not drain the queue"
        )
        own = 1 + _wait_drained(connection, keys.queue(namespace, CAPABILITY, "normal"))
        drained = meter.stop(own_commands=own)
    pipe = connection.pipeline(transaction=False)
    for task_id in ids:
        pipe.hmget(keys.task(namespace, task_id), "started_ms", "finished_ms", "state")
    spans = pipe.execute()
    assert all(state == "completed" for _, _, state in spans)
    span_ms = max(int(f) for _, f, _ in spans) - min(int(s) for s, _, _ in spans)
    return {
        "per_s": count / max(span_ms, 1) * 1000,
        **(submitted + drained).per(count),
        "drain_reads_per_task": drained.reads / count,
        "drain_cpu_us_per_task": drained.cpu / count * 1e6,
        "drain_commands_per_task": drained.commands / count,
    }


def measure_ceiling(connection: redis.Redis, count: int, batch: int) -> dict[str, float]:
    """Plain Streams: XADD (single, or pipelined by 100), XREADGROUP COUNT ``batch``, XACK."""
    connection.flushall()
    stream, group = "ceiling:stream", "g"
    connection.xgroup_create(stream, group, id="0", mkstream=True)
    meter = Meter(connection)
    began = time.perf_counter()
    if batch == 1:
        for index in range(count):
            connection.xadd(stream, {"task": f"t{index}"})
    else:
        for start in range(0, count, BATCH):
            pipe = connection.pipeline(transaction=False)
            for index in range(start, min(start + BATCH, count)):
                pipe.xadd(stream, {"task": f"t{index}"})
            pipe.execute()
    submit_s = time.perf_counter() - began
    began = time.perf_counter()
    drained, previous = 0, None
    while True:
        if batch == 1:  # one round trip an entry: ack the previous entry with the next read
            pipe = connection.pipeline(transaction=False)
            if previous is not None:
                pipe.xack(stream, group, previous)
            pipe.xreadgroup(group, "c", {stream: ">"}, count=1)
            entries = _entries(pipe.execute()[-1])
            previous = entries[0][0] if entries else None
        else:
            entries = _entries(connection.xreadgroup(group, "c", {stream: ">"}, count=batch))
            if entries:
                pipe = connection.pipeline(transaction=False)
                for entry_id, _ in entries:
                    pipe.xack(stream, group, entry_id)
                pipe.execute()
        if not entries:
            break
        drained += len(entries)
    drain_s = time.perf_counter() - began
    if previous is not None:
        connection.xack(stream, group, previous)
    span = meter.stop()
    assert drained == count
    return {"submit_per_s": count / submit_s, "per_s": count / drain_s, **span.per(count)}


def _entries(reply: Any) -> list[Any]:
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3
        return next(iter(reply.values()))[0]
    return reply[0][1]


def measure_latency(
    connection: redis.Redis, url: str, samples: int, warmup: int = 50
) -> dict[str, float]:
    """Submit-to-start with two idle agent processes blocked in XREAD."""
    namespace = "bench"
    client = fresh(connection, namespace)
    latencies: list[float] = []
    with (
        agent_process(url, namespace, "bench-idle-1", 1),
        agent_process(url, namespace, "bench-idle-2", 1),
    ):
        for index in range(warmup + samples):
            _wait_blocked(connection, 2)
            submitted = time.time()
            task_id = client.submit(CAPABILITY, "stamp")
            reply = connection.blpop([STARTED_LIST], timeout=30)
            assert reply is not None, "no agent started the task"
            started_id, started_at = reply[1].split()
            assert started_id == task_id
            if index >= warmup:
                latencies.append((float(started_at) - submitted) * 1000)
    cuts = statistics.quantiles(latencies, n=100)
    return {"p50_ms": cuts[49], "p99_ms": cuts[98], "mean_ms": statistics.fmean(latencies)}


def _wait_blocked(connection: redis.Redis, agents: int) -> None:
    """Until ``agents`` clients block in XREAD (the idle agents' waiters); 1 ms waits on the server."""
    for _ in range(30_000):
        if int(connection.info("clients")["blocked_clients"]) >= agents:
            return
        connection.blpop(["bench:never"], timeout=0.001)
    raise RuntimeError("the agents did not go idle")


def profile(connection: redis.Redis, count: int) -> str:
    """INFO commandstats per task for submit, complete+NEXT 1 and pipelined completes with NEXT 100,
    as a markdown table."""
    client = fresh(connection, "bench")
    client.agent_register("bench-profile", [CAPABILITY], ttl_ms=3_600_000)
    rows: list[str] = []

    def section(title: str, run: Callable[[], None]) -> None:
        connection.config_resetstat()
        run()
        stats = {
            name[len("cmdstat_") :]: value
            for name, value in connection.info("commandstats").items()
        }
        stats.pop("config|resetstat", None)
        fcall = stats.pop("fcall", {"usec": 0, "calls": 0})
        inner = sum(value["usec"] for value in stats.values())
        rows.append(
            f"| **{title}**: FCALL | {fcall['calls'] / count:.2f} | {fcall['usec'] / count:.1f} |"
        )
        for name, value in sorted(stats.items(), key=lambda item: -item[1]["usec"]):
            rows.append(f"| {name} | {value['calls'] / count:.2f} | {value['usec'] / count:.2f} |")
        rows.append(f"| Lua outside commands ({title}) | | {(fcall['usec'] - inner) / count:.1f} |")

    section("submit", lambda: _submit_all(client, count, pipelined=False))
    section("complete + NEXT 1", lambda: lua_profile.drain_one_at_a_time(client, "bench-profile"))
    _submit_all(client, count, pipelined=True)
    section(
        f"complete x{BATCH} pipelined, NEXT {BATCH} on the last",
        lambda: lua_profile.drain_batched(client, "bench-profile"),
    )
    header = ["| command (per task) | calls | µs |", "| --- | ---: | ---: |"]
    return "\n".join(header + rows)


# -- the run -----------------------------------------------------------------------------------


def _figure(target: str, measured: float, passed: bool | None, digits: int = 1) -> dict[str, Any]:
    return {"target": target, "measured": round(measured, digits), "pass": passed}


def run(tasks: int = 20_000, samples: int = 1_000, repeats: int = 3) -> dict[str, Any]:
    """Measure on a private redis-server; returns figure -> {target, measured, pass}, and 'details'."""
    with EmbeddedRedis() as server:
        connection = redis.Redis(host=server.host, port=server.port, decode_responses=True)
        ceiling_one = best(repeats, lambda: measure_ceiling(connection, tasks, 1), "per_s")
        ceiling_batch = best(
            repeats, lambda: measure_ceiling(connection, tasks * 2, BATCH), "per_s"
        )
        submit_single = best(
            repeats, lambda: measure_submit(connection, tasks, pipelined=False), "per_s"
        )
        submit_batch = best(
            repeats, lambda: measure_submit(connection, tasks, pipelined=True), "per_s"
        )
        one = best(repeats, lambda: measure_drain(connection, server.url, tasks, 1), "per_s")
        batch = best(
            repeats, lambda: measure_drain(connection, server.url, tasks * 2, BATCH), "per_s"
        )
        peer_runs = {
            peer: best(
                repeats if peer == "dramatiq" else 1,
                lambda peer=peer: peers.measure(connection, server.url, peer, tasks),
                "per_s",
            )
            for peer in peers.PEERS
            if peers.available(peer)
        }
        latency = measure_latency(connection, server.url, samples)
        details = profile(connection, min(tasks, 5_000))
        sections = lua_profile.sections(connection, min(tasks, 3_000))  # replaces the library: last
        connection.close()
    share = batch["per_s"] / ceiling_batch["per_s"]
    t = TARGETS
    rows = {
        "plain Streams, one at a time (XREADGROUP COUNT 1 + XACK)": ceiling_one,
        "plain Streams, batched (XREADGROUP COUNT 100, pipelined XACK)": ceiling_batch,
        **{PEER_NAMES[peer]: figures for peer, figures in peer_runs.items()},
        "agentfn worker, concurrency 1": one,
        "agentfn worker, concurrency 100": batch,
    }
    dramatiq = peer_runs.get("dramatiq")
    side_by_side = comparison(rows, dramatiq, ceiling_batch)
    return {
        "ceiling: XADD single (entries/s)": _figure("", ceiling_one["submit_per_s"], None, 0),
        "ceiling: XADD pipelined (entries/s)": _figure("", ceiling_batch["submit_per_s"], None, 0),
        "ceiling: drain one at a time (entries/s)": _figure("", ceiling_one["per_s"], None, 0),
        "ceiling: drain COUNT 100 (entries/s)": _figure("", ceiling_batch["per_s"], None, 0),
        "ceiling: Redis CPU per entry, one at a time (µs)": _figure(
            "", ceiling_one["cpu_us_per_task"], None
        ),
        "ceiling: Redis CPU per entry, batched (µs)": _figure(
            "", ceiling_batch["cpu_us_per_task"], None
        ),
        "submit single calls (tasks/s)": _figure("", submit_single["per_s"], None, 0),
        "submit_many by 100 (tasks/s)": _figure("", submit_batch["per_s"], None, 0),
        "drain one at a time, 1 agent process (tasks/s)": _figure(
            f">= {t['drain_one_at_a_time_per_s']:,}",
            one["per_s"],
            one["per_s"] >= t["drain_one_at_a_time_per_s"],
            0,
        ),
        "drain concurrency 100, 1 agent process (tasks/s)": _figure("", batch["per_s"], None, 0),
        "batch drain / plain-Streams ceiling": _figure(
            f">= {t['batch_share_of_ceiling']:.0%}",
            share * 100,
            share >= t["batch_share_of_ceiling"],
        )
        | {"unit": "%"},
        "round trips per task, one at a time (submit + complete-and-claim)": _figure(
            f"<= {t['round_trips_per_task']:g}",
            one["reads_per_task"],
            round(one["reads_per_task"], 2) <= t["round_trips_per_task"],
            3,
        ),
        "round trips per task, batched": _figure(
            f"<= {t['round_trips_per_task']:g}",
            batch["reads_per_task"],
            round(batch["reads_per_task"], 2) <= t["round_trips_per_task"],
            3,
        ),
        "Redis CPU per task, one at a time (µs)": _figure(
            f"<= {t['redis_cpu_us_per_task']:g}",
            one["cpu_us_per_task"],
            one["cpu_us_per_task"] <= t["redis_cpu_us_per_task"],
        ),
        "Redis CPU per task, batched (µs)": _figure(
            f"<= {t['redis_cpu_us_per_task']:g}",
            batch["cpu_us_per_task"],
            batch["cpu_us_per_task"] <= t["redis_cpu_us_per_task"],
        ),
        "  of which submit / drain, one at a time (µs)": _figure(
            "", one["cpu_us_per_task"] - one["drain_cpu_us_per_task"], None
        )
        | {
            "measured": f"{one['cpu_us_per_task'] - one['drain_cpu_us_per_task']:.1f} / "
            f"{one['drain_cpu_us_per_task']:.1f}"
        },
        "  of which submit / drain, batched (µs)": _figure("", 0, None)
        | {
            "measured": f"{batch['cpu_us_per_task'] - batch['drain_cpu_us_per_task']:.1f} / "
            f"{batch['drain_cpu_us_per_task']:.1f}"
        },
        "submit-to-start latency p50, idle agents (ms)": _figure(
            f"<= {t['latency_p50_ms']:g}",
            latency["p50_ms"],
            latency["p50_ms"] <= t["latency_p50_ms"],
            3,
        ),
        "submit-to-start latency p99, idle agents (ms)": _figure(
            f"<= {t['latency_p99_ms']:g}",
            latency["p99_ms"],
            latency["p99_ms"] <= t["latency_p99_ms"],
            3,
        ),
        **issue_13_figures(one, batch, dramatiq),
        "details": (
            f"Side by side, one run, same redis-server, {tasks:,} no-op tasks a drain "
            f"({2 * tasks:,} for the batched ones); per task life = its submit and its drain:\n\n"
            + side_by_side
            + "\n\nRedis time per task by command (INFO commandstats):\n\n"
            + details
            + "\n\nLua time per task by section (bench/lua_profile.py: an instrumented copy of "
            "the library, one task at a time):\n\n" + sections
        ),
    }


#: How the peers are named in the side-by-side table.
PEER_NAMES = {
    "dramatiq": "Dramatiq, RedisBroker, 1 process x 8 threads",
    "celery": "Celery, solo pool, Redis broker",
}


def _ratio(value: float, base: dict[str, float] | None, key: str) -> str:
    return f"{value / base[key]:.2f}x" if base and base.get(key) else "n/a"


def comparison(
    rows: dict[str, dict[str, float]],
    dramatiq: dict[str, float] | None,
    ceiling: dict[str, float],
) -> str:
    """The side-by-side table: drain rate, commands, round trips and Redis CPU per task life,
    with ratios against Dramatiq and against the batched plain-Streams ceiling."""
    lines = [
        "| system | drain tasks/s | vs Dramatiq | vs ceiling | commands / task | round trips / task "
        "| Redis CPU µs / task | CPU vs Dramatiq |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, figures in rows.items():
        lines.append(
            f"| {name} | {figures['per_s']:,.0f} | {_ratio(figures['per_s'], dramatiq, 'per_s')} "
            f"| {figures['per_s'] / ceiling['per_s']:.1%} | {figures['commands_per_task']:.1f} "
            f"| {figures['reads_per_task']:.2f} | {figures['cpu_us_per_task']:.1f} "
            f"| {_ratio(figures['cpu_us_per_task'], dramatiq, 'cpu_us_per_task')} |"
        )
    if dramatiq is None:
        lines += ["", "Dramatiq is not installed: `pip install -e '.[bench]'` for the peers."]
    return "\n".join(lines)


def issue_13_figures(
    one: dict[str, float], batch: dict[str, float], dramatiq: dict[str, float] | None
) -> dict[str, Any]:
    """The figures of issue 13's targets: agentfn against Dramatiq in the same run, and commands
    per task life."""
    t = TARGETS
    figures: dict[str, Any] = {}
    for label, run in (("one at a time", one), ("concurrency 100", batch)):
        figures[f"commands per task life, {label}"] = _figure(
            f"<= {t['commands_per_task']:g}",
            run["commands_per_task"],
            run["commands_per_task"] <= t["commands_per_task"],
        )
    if dramatiq is None:
        return figures
    for label, run in (("one at a time", one), ("concurrency 100", batch)):
        ratio = run["cpu_us_per_task"] / dramatiq["cpu_us_per_task"]
        figures[f"Redis CPU per task life / Dramatiq's, {label}"] = _figure(
            f"<= {t['cpu_vs_dramatiq']:g}", ratio, ratio <= t["cpu_vs_dramatiq"], 2
        ) | {"unit": "x"}
    ratio = one["per_s"] / dramatiq["per_s"]
    figures["drain one at a time / Dramatiq's"] = _figure(
        f">= {t['drain_one_at_a_time_vs_dramatiq']:g}",
        ratio,
        ratio >= t["drain_one_at_a_time_vs_dramatiq"],
        2,
    ) | {"unit": "x"}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tasks", type=int, default=20_000, help="tasks per drain (twice that for batches)"
    )
    parser.add_argument("--samples", type=int, default=1_000, help="latency samples")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each throughput figure (best kept)"
    )
    options = parser.parse_args()
    results = run(options.tasks, options.samples, options.repeats)
    details = results.pop("details")
    width = max(len(name) for name in results)
    for name, figure in results.items():
        verdict = {True: "pass", False: "MISS", None: ""}[figure["pass"]]
        print(
            f"{name:<{width}}  {figure['measured']!s:>12} {figure.get('unit', '')}  {figure['target']:>8}  {verdict}"
        )
    print()
    print(details)


if __name__ == "__main__":
    main()
