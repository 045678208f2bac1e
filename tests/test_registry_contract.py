"""Contract tests: the registry functions called with raw FCALL, as any language would."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
import redis

from .helpers import ROOT, assert_refused, fcall, pairs, secret_of, server_ms, wait_until
from .secret_helpers import WRONG_SECRET


def register(r, agent_id, caps, *options):
    return pairs(fcall(r, "agentfn_agent_register", agent_id, secret_of(agent_id), caps, *options))


def as_agent(r, function, agent_id, *options):
    """Call a function that acts as the agent (heartbeat, deregister): its id, then its secret."""
    return pairs(fcall(r, function, agent_id, secret_of(agent_id), *options))


def find(r, capability="*", *options):
    return [
        pairs(a)["id"]
        for a in r.execute_command("FCALL_RO", "agentfn_agent_find", 1, ROOT, capability, *options)
    ]


def test_register_returns_record_on_server_clock(deployed):
    before = server_ms(deployed)
    agent = register(
        deployed,
        "researcher-1",
        "web_search,summarize",
        "TTL_MS",
        "5000",
        "METADATA",
        '{"host":"h1"}',
    )
    after = server_ms(deployed)
    assert agent["id"] == "researcher-1"
    assert agent["capabilities"] == "web_search,summarize"
    assert agent["metadata"] == '{"host":"h1"}'
    assert agent["status"] == "live"
    assert before + 5000 <= int(agent["expires_ms"]) <= after + 5000
    assert deployed.zscore(f"{ROOT}:cap:web_search", "researcher-1") == int(agent["expires_ms"])


def test_find_by_capability_returns_only_agents_with_it(deployed):
    register(deployed, "a1", "web_search")
    register(deployed, "a2", "web_search,write")
    register(deployed, "a3", "code")
    assert sorted(find(deployed, "web_search")) == ["a1", "a2"]
    assert find(deployed, "code") == ["a3"]
    assert find(deployed, "nothing") == []
    assert sorted(find(deployed)) == ["a1", "a2", "a3"]
    assert len(find(deployed, "*", "LIMIT", "2")) == 2


def test_lapsed_agent_is_never_found_and_is_swept_from_every_index(deployed):
    register(deployed, "short", "web_search,write", "TTL_MS", "50")
    register(deployed, "long", "web_search")
    deadline = int(as_agent(deployed, "agentfn_agent_heartbeat", "short")["expires_ms"])
    wait_until(deployed, deadline)
    assert find(deployed, "web_search") == ["long"]
    assert find(deployed, "write") == []
    # The next write transition sweeps it from the indexes; its record says lapsed.
    register(deployed, "other", "code")
    assert deployed.zscore(f"{ROOT}:cap:web_search", "short") is None
    assert deployed.zscore(f"{ROOT}:cap:write", "short") is None
    assert deployed.zscore(f"{ROOT}:agents", "short") is None
    assert deployed.hget(f"{ROOT}:agent:short", "status") == "lapsed"
    assert deployed.pttl(f"{ROOT}:agent:short") > 0
    with pytest.raises(redis.ResponseError, match="^LAPSED"):
        as_agent(deployed, "agentfn_agent_heartbeat", "short")
    # Registering again revives it.
    register(deployed, "short", "write")
    assert find(deployed, "write") == ["short"]
    assert deployed.pttl(f"{ROOT}:agent:short") == -1


def test_reregister_with_fewer_capabilities_leaves_dropped_indexes(deployed):
    register(deployed, "a1", "web_search,write,code")
    register(deployed, "a1", "write")
    assert find(deployed, "web_search") == []
    assert find(deployed, "code") == []
    assert find(deployed, "write") == ["a1"]
    assert not deployed.exists(f"{ROOT}:cap:web_search")


def test_heartbeat_extends_liveness(deployed):
    first = register(deployed, "a1", "x", "TTL_MS", "1000")
    beat = as_agent(deployed, "agentfn_agent_heartbeat", "a1", "TTL_MS", "60000")
    assert int(beat["expires_ms"]) >= int(first["expires_ms"]) + 59000
    assert beat["ttl_ms"] == "60000"
    assert deployed.zscore(f"{ROOT}:cap:x", "a1") == int(beat["expires_ms"])


def test_deregister_removes_agent_everywhere(deployed):
    register(deployed, "a1", "x,y")
    reply = as_agent(deployed, "agentfn_agent_deregister", "a1")
    assert reply == {"agent": "a1", "released": 0}
    assert find(deployed) == []
    assert not deployed.exists(f"{ROOT}:agent:a1", f"{ROOT}:cap:x", f"{ROOT}:cap:y")


def test_every_transition_is_in_the_event_stream(deployed):
    register(deployed, "a1", "x")
    as_agent(deployed, "agentfn_agent_deregister", "a1")
    kinds = [fields["type"] for _, fields in deployed.xrange(f"{ROOT}:events")]
    assert kinds == ["agent.registered", "agent.deregistered"]


S = secret_of("a1")
E = secret_of("existing")
BAD_REGISTER = [
    ("BADARG", ["a1", S]),  # missing capabilities
    ("BADARG", ["a1"]),  # missing secret and capabilities
    ("BADARG", ["", S, "x"]),
    ("BADARG", ["a" * 129, S, "x"]),
    ("BADARG", ["a:1", S, "x"]),
    ("BADARG", ["a{1}", S, "x"]),
    ("BADARG", ["a 1", S, "x"]),
    ("BADARG", ["a1", "x"]),  # the secret left out: capabilities taken for it
    ("BADARG", ["a1", "", "x"]),
    ("BADARG", ["a1", S[:31], "x"]),
    ("BADARG", ["a1", "s" * 129, "x"]),
    ("BADARG", ["a1", S[:31] + "+", "x"]),
    ("BADARG", ["a1", S[:31] + "=", "x"]),
    ("BADARG", ["a1", S[:31] + " ", "x"]),
    ("BADARG", ["a1", S[:31] + ":", "x"]),
    ("BADARG", ["a1", S, "web search"]),
    ("BADARG", ["a1", S, "x,,y"]),
    ("BADARG", ["a1", S, ",x"]),
    ("BADARG", ["a1", S, "x:y"]),
    ("BADARG", ["a1", S, "c" * 65]),
    ("LIMIT", ["a1", S, ",".join(f"c{i}" for i in range(33))]),
    ("BADARG", ["a1", S, "x", "TTL_MS"]),
    ("BADARG", ["a1", S, "x", "TTL_MS", "soon"]),
    ("BADARG", ["a1", S, "x", "TTL_MS", "1.5"]),
    ("BADARG", ["a1", S, "x", "TTL_MS", "0"]),
    ("BADARG", ["a1", S, "x", "TTL_MS", "-5"]),
    ("BADARG", ["a1", S, "x", "TTL_MS", str(10**15)]),
    ("BADARG", ["a1", S, "x", "TTL_MS", "10", "TTL_MS", "20"]),
    ("BADARG", ["a1", S, "x", "METADATA", "{not json"]),
    ("BADARG", ["a1", S, "x", "METADATA", "[1,2]"]),
    ("BADARG", ["a1", S, "x", "METADATA", '"text"']),
    ("BADARG", ["a1", S, "x", "COLOR", "blue"]),
    ("DENIED", ["existing", WRONG_SECRET, "x"]),  # a live id is its secret's
]


@pytest.mark.parametrize("code,args", BAD_REGISTER)
def test_register_bad_input_changes_nothing(deployed, raw, code, args):
    register(deployed, "existing", "x", "TTL_MS", "60000")
    assert_refused(deployed, raw, code, "agentfn_agent_register", *args)


@pytest.mark.parametrize(
    "code,function,args",
    [
        ("BADARG", "agentfn_agent_heartbeat", []),
        ("BADARG", "agentfn_agent_heartbeat", ["existing"]),
        ("BADARG", "agentfn_agent_heartbeat", ["bad id", E]),
        ("BADARG", "agentfn_agent_heartbeat", ["existing", E, "TTL_MS", "x"]),
        ("BADARG", "agentfn_agent_heartbeat", ["existing", E, "TTL_MS", "0"]),
        ("BADARG", "agentfn_agent_heartbeat", ["existing", E, "NOPE", "1"]),
        ("BADARG", "agentfn_agent_heartbeat", ["existing", "short"]),
        ("BADARG", "agentfn_agent_heartbeat", ["existing", "TTL_MS", "60000"]),
        ("NOTFOUND", "agentfn_agent_heartbeat", ["ghost", E]),
        ("DENIED", "agentfn_agent_heartbeat", ["existing", WRONG_SECRET]),
        ("DENIED", "agentfn_agent_heartbeat", ["existing", S, "TTL_MS", "60000"]),
        ("BADARG", "agentfn_agent_deregister", []),
        ("BADARG", "agentfn_agent_deregister", ["existing"]),
        ("BADARG", "agentfn_agent_deregister", ["bad{id}", E]),
        ("BADARG", "agentfn_agent_deregister", ["existing", E, "EXTRA", "1"]),
        ("BADARG", "agentfn_agent_deregister", ["existing", E[:-1] + "/"]),
        ("NOTFOUND", "agentfn_agent_deregister", ["ghost", E]),
        ("DENIED", "agentfn_agent_deregister", ["existing", WRONG_SECRET]),
        ("BADARG", "agentfn_agent_find", []),
        ("BADARG", "agentfn_agent_find", ["bad cap"]),
        ("BADARG", "agentfn_agent_find", ["x", "LIMIT", "0"]),
        ("BADARG", "agentfn_agent_find", ["x", "LIMIT", "many"]),
        ("BADARG", "agentfn_agent_find", ["x", "ORDER", "asc"]),
        ("BADARG", "agentfn_version", ["extra"]),
    ],
)
def test_registry_bad_input_changes_nothing(deployed, raw, code, function, args):
    register(deployed, "existing", "x", "TTL_MS", "60000")
    assert_refused(deployed, raw, code, function, *args)


@pytest.mark.parametrize(
    "keys", [(), ("agentfn:default",), ("agentfn:{a b}",), (ROOT, ROOT), ("other:{default}",)]
)
def test_wrong_root_key_is_refused(deployed, raw, keys):
    assert_refused(deployed, raw, "BADARG", "agentfn_agent_register", "a1", S, "x", keys=keys)


def test_unmigrated_namespace_is_refused_with_version(deployed, raw):
    message = assert_refused(
        deployed, raw, "VERSION", "agentfn_agent_register", "a1", S, "x", keys=("agentfn:{fresh}",)
    )
    assert "agentfn migrate --namespace fresh" in message


def test_registry_from_redis_cli_alone(r, redis_cli, library):
    """Load the rendered library with redis-cli, initialise a namespace, register and find."""
    render = subprocess.run(
        [sys.executable, "-m", "agentfn", "render"], capture_output=True, text=True, check=True
    )
    assert render.stdout == library.source
    assert (
        redis_cli("-x", "FUNCTION", "LOAD", "REPLACE", input=render.stdout).stdout.strip()
        == "agentfn"
    )
    for migration in sorted((pathlib.Path(__file__).parent.parent / "migrations").glob("*.lua")):
        while (
            redis_cli("EVAL", migration.read_text(), "1", "agentfn:{cli}").stdout.strip() != "done"
        ):
            pass
        redis_cli("HSET", "agentfn:{cli}:meta", "schema_version", str(int(migration.name[:4])))
    out = redis_cli(
        "FCALL",
        "agentfn_agent_register",
        "1",
        "agentfn:{cli}",
        "w1",
        secret_of("w1"),
        "write",
        "TTL_MS",
        "60000",
    ).stdout
    assert "live" in out.split()
    found = redis_cli(
        "FCALL_RO", "agentfn_agent_find", "1", "agentfn:{cli}", "write"
    ).stdout.split()
    assert found[:2] == ["id", "w1"]
