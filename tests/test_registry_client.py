"""The registry through the Python client (sync and asyncio) and its error mapping."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio

import agentfn
from agentfn.errors import AgentLapsed, BadArgument, LibraryError, NotFound, SchemaMismatch


def test_register_find_deregister(client):
    agent = client.agent_register(
        "r1", ["web_search", "summarize"], ttl_ms=60_000, metadata={"host": "h1"}
    )
    assert agent.capabilities == ("web_search", "summarize")
    assert agent.metadata == {"host": "h1"} and agent.status == "live" and agent.ttl_ms == 60_000
    client.agent_register("w1", ["write"])
    assert [a.id for a in client.agent_find("web_search")] == ["r1"]
    assert sorted(a.id for a in client.agent_find()) == ["r1", "w1"]
    assert client.agent_deregister("r1") == 0
    assert client.agent_find("web_search") == []


def test_heartbeat_extends(client):
    first = client.agent_register("r1", ["x"], ttl_ms=1_000)
    beat = client.agent_heartbeat("r1", ttl_ms=120_000)
    assert beat.expires_ms >= first.expires_ms + 119_000


def test_each_code_maps_to_its_exception(client):
    with pytest.raises(BadArgument) as info:
        client.agent_register("bad id", ["x"])
    assert info.value.code == "BADARG" and isinstance(info.value, LibraryError)
    assert "agent_id" in str(info.value)
    with pytest.raises(NotFound) as missing:
        client.agent_heartbeat("ghost", secret="g" * 32)
    assert missing.value.code == "NOTFOUND"


def test_lapsed_heartbeat_raises_agent_lapsed(client, deployed):
    agent = client.agent_register("r1", ["x"], ttl_ms=20)
    seconds, micros = deployed.time()
    remaining_ms = agent.expires_ms - (seconds * 1000 + micros // 1000) + 5
    if remaining_ms > 0:
        deployed.blpop(["agentfn-test:never"], timeout=remaining_ms / 1000)
    with pytest.raises(AgentLapsed):
        client.agent_heartbeat("r1")


def test_schema_error_maps_when_check_is_skipped(deployed):
    unchecked = agentfn.Client(deployed, "fresh", check_library=False)
    with pytest.raises(SchemaMismatch):
        unchecked.agent_find("x")


def test_client_rejects_options_the_function_does_not_declare(client):
    with pytest.raises(TypeError, match="no option"):
        client._call("agentfn_agent_find", ["x"], {"COLOR": "blue"})
    with pytest.raises(TypeError, match="positional"):
        client._call("agentfn_agent_find", [], None)
    with pytest.raises(TypeError):
        client.agent_register("a1", "x,y")  # a string is not a list of capabilities


def test_bytes_client_gets_the_same_results(redis_proc, deployed):
    raw_client = agentfn.Client(redis.Redis(host=redis_proc.host, port=redis_proc.port), "default")
    raw_client.agent_register("r1", ["x"], metadata={"k": "ü"})
    (found,) = raw_client.agent_find("x")
    assert found.id == "r1" and found.metadata == {"k": "ü"}


def test_async_client_has_the_same_methods(redis_proc, deployed):
    async def scenario():
        connection = redis.asyncio.Redis(
            host=redis_proc.host, port=redis_proc.port, decode_responses=True
        )
        try:
            client = agentfn.AsyncClient(connection)
            await client.agent_register("r1", ["x"])
            beat = await client.agent_heartbeat("r1")
            found = await client.agent_find("x")
            with pytest.raises(NotFound):
                await client.agent_deregister("ghost", secret="g" * 32)
            return beat, found
        finally:
            await connection.aclose()

    beat, found = asyncio.run(scenario())
    assert beat.id == "r1" and [a.id for a in found] == ["r1"]
