"""Agent churn (issue 16): 2,000 agents under fresh ids serve direct and capability tasks, half
deregister and half lapse while holding work. Afterwards (past retention and reaps) the
namespace holds only what docs/PROTOCOL.md lists for live work, every direct task ended by the
policy (dead, 'agent gone'), and no consumer group names a departed agent.

Time is driven by options (1 ms TTLs and retentions, GRACE_MS 0, namespace retentions 0) and
waits on the server clock (tasks_helpers.wait_until); every agent's calls go in pipelines."""

from __future__ import annotations

from collections import Counter
from typing import Any

import redis

from agentfn.constants import LIMITS

from .helpers import AGENT_FUNCTIONS, ROOT, pairs, secret_of, server_ms, wait_until
from .tasks_helpers import claim_reply

AGENTS = 2_000
CAPABILITIES = ["churn.a", "churn.b", "churn.c", "churn.d"]


def pipelined(r: redis.Redis, calls: list[tuple[str, ...]]) -> list[Any]:
    """FCALL every (function, *args) in one pipeline; the replies in order (errors raise)."""
    pipe = r.pipeline(transaction=False)
    for function, *args in calls:
        if function in AGENT_FUNCTIONS:  # the agent's secret follows its id (protocol 3.0)
            args = [args[0], secret_of(args[0]), *args[1:]]
        pipe.execute_command("FCALL", function, 1, ROOT, *args)
    return pipe.execute()


def claims(r: redis.Redis, ids: list[str], count: int) -> dict[str, list[dict[str, Any]]]:
    replies = pipelined(r, [("agentfn_task_claim", agent, "COUNT", str(count)) for agent in ids])
    return {agent: claim_reply(reply)["tasks"] for agent, reply in zip(ids, replies, strict=True)}


def reap_until_quiet(r: redis.Redis) -> None:
    for _ in range(1_000):
        counters = pairs(r.execute_command("FCALL", "agentfn_reap", 1, ROOT))
        if not any(int(value) for value in counters.values()):
            return
    raise AssertionError("the reaper never came to rest")


def keys_by_type(r: redis.Redis) -> Counter[tuple[str, str]]:
    """Every key of the namespace as (kind, type): kind is the key's name after the root, up to
    its first variable part (task:<id> -> task)."""
    found: Counter[tuple[str, str]] = Counter()
    for key in set(r.scan_iter(match=f"{ROOT}:*", count=1_000)):  # SCAN may repeat a key
        found[(key[len(ROOT) + 1 :].split(":")[0], r.type(key))] += 1
    return found


def test_agent_churn_leaves_only_live_work(deployed):
    r = deployed
    r.hset(f"{ROOT}:meta", "agent_retention_ms", "0")  # lapsed records go when swept
    ids = [f"churn-{n}-{server_ms(r)}" for n in range(AGENTS)]  # fresh ids, as host-pid gives
    capability = {agent: CAPABILITIES[n % len(CAPABILITIES)] for n, agent in enumerate(ids)}
    pipelined(r, [("agentfn_agent_register", a, capability[a], "TTL_MS", "600000") for a in ids])

    def submit_direct(count: int) -> list[str]:
        calls = [
            ("agentfn_task_submit", "direct", "{}", "TO", a, "GRACE_MS", "0", "RETENTION_MS", "1")
            for a in ids
            for _ in range(count)
        ]
        return [pairs(reply)["id"] for reply in pipelined(r, calls)]

    # Serve: two direct tasks and two capability tasks each, completed.
    submit_direct(2)
    pipelined(
        r,
        [
            ("agentfn_task_submit", capability[a], "{}", "RETENTION_MS", "1", "MAX_ATTEMPTS", "9")
            for a in ids
            for _ in range(4)
        ],
    )
    for _ in range(2):
        served = claims(r, ids, 2)
        assert all(len(tasks) == 2 for tasks in served.values())
        pipelined(
            r,
            [
                ("agentfn_task_complete", t["id"], t["token"], '"done"')
                for tasks in served.values()
                for t in tasks
            ],
        )
    # Hold work: each agent holds a direct task and a capability task, one more direct waits.
    direct = submit_direct(1)
    held = claims(r, ids, 2)
    assert all(len(tasks) == 2 for tasks in held.values())
    direct += submit_direct(1)

    # Half deregister, half lapse (a 1 ms TTL, then the server clock passes it).
    leaving, lapsing = ids[::2], ids[1::2]
    beats = pipelined(r, [("agentfn_agent_heartbeat", a, "TTL_MS", "1") for a in lapsing])
    pipelined(r, [("agentfn_agent_deregister", a) for a in leaving])
    wait_until(r, max(int(pairs(beat)["expires_ms"]) for beat in beats))
    reap_until_quiet(r)

    # Every direct task left behind ended by the policy (the served ones completed); the
    # capability tasks went back to their queues.
    records = [
        pairs(reply)
        for reply in _pipelined_reads(r, [("agentfn_task_get", task_id) for task_id in direct])
    ]
    assert {(t["state"], t["error"]) for t in records} == {("dead", "agent gone")}
    assert r.zcard(f"{ROOT}:agents") == 0 and not r.exists(f"{ROOT}:orphans")
    streams = [key for key in r.scan_iter(match=f"{ROOT}:*", _type="stream")]
    for stream in streams:
        if ":queue:" in stream or ":direct:" in stream:
            assert r.xinfo_consumers(stream, "agentfn") == [], stream
    assert not any(":direct:" in stream for stream in streams)

    # A live agent drains the queues, then leaves; dead letters past their retention go.
    pipelined(r, [("agentfn_agent_register", "drainer", ",".join(CAPABILITIES))])
    finished = 0
    while True:
        [reply] = pipelined(
            r, [("agentfn_task_claim", "drainer", "COUNT", str(LIMITS["claim_count"]))]
        )
        tasks = claim_reply(reply)["tasks"]
        if not tasks:
            break
        pipelined(r, [("agentfn_task_complete", t["id"], t["token"], '"ok"') for t in tasks])
        finished = max(finished, server_ms(r))
    pipelined(r, [("agentfn_agent_deregister", "drainer")])
    r.hset(f"{ROOT}:meta", "dead_retention_ms", "0")
    wait_until(r, max(finished, server_ms(r)) + 1)
    reap_until_quiet(r)

    assert keys_by_type(r) == Counter(
        {("meta", "hash"): 1, ("schema", "string"): 1, ("events", "stream"): 1}
    )


def _pipelined_reads(r: redis.Redis, calls: list[tuple[str, ...]]) -> list[Any]:
    pipe = r.pipeline(transaction=False)
    for function, *args in calls:
        pipe.execute_command("FCALL_RO", function, 1, ROOT, *args)
    return pipe.execute()
