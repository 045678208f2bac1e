"""Messages benchmark: throughput of send and receive, and request/reply latency between processes.

Run alone: ``.venv/bin/python bench/messages.py [--messages N] [--requests N]``. It starts its own
redis-server (persistence off) on a free port in a temporary directory, deploys the library,
measures, prints the figures and stops the server. ``run()`` returns them as a dict.

What is measured (one client process, one connection at a time, loopback):
- ping: PING round trips per second, the ceiling of every one-round-trip-per-message figure.
- send single: one FCALL agentfn_msg_send per round trip.
- send pipelined: FCALL agentfn_msg_send in pipelines of BATCH.
- receive single: agentfn_msg_read COUNT 1 ACK <the previous message>: one round trip per message.
- receive batched: agentfn_msg_read COUNT BATCH ACK <the previous batch>: one round trip per BATCH.
- request/reply: ``client.request`` against a responder in another OS process that answers with
  ``receive`` + ``send(reply_to=...)`` + ``ack``; p50/p99 of the round trip as the requester sees it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import agentfn  # noqa: E402
from agentfn.client.api.base import build_call  # noqa: E402
from agentfn.server import EmbeddedRedis  # noqa: E402

#: Messages per pipeline, and per read in the batched receive.
BATCH = 100
#: The responder's agent id, and the message type that tells it to stop.
RESPONDER = "bench-responder"
STOP = "stop"


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


def _ping(client: agentfn.Client, count: int) -> float:
    begun = time.perf_counter()
    for _ in range(count):
        client.redis.ping()
    return _rate(count, time.perf_counter() - begun)


def _send_single(client: agentfn.Client, count: int) -> float:
    begun = time.perf_counter()
    for index in range(count):
        client.send("bench-sender", "bench-inbox", "note", {"n": index})
    return _rate(count, time.perf_counter() - begun)


def _send_pipelined(client: agentfn.Client, count: int) -> float:
    begun = time.perf_counter()
    for start in range(0, count, BATCH):
        pipe = client.redis.pipeline(transaction=False)
        for index in range(start, min(start + BATCH, count)):
            command, args = build_call(
                "agentfn_msg_send",
                client.root,
                ["bench-sender", "bench-inbox", "note", f'{{"n":{index}}}'],
            )
            pipe.execute_command(command, *args)
        pipe.execute()
    return _rate(count, time.perf_counter() - begun)


def _receive_single(client: agentfn.Client, count: int) -> float:
    begun, handled = time.perf_counter(), []
    while len(handled) < count:
        (message,) = client.read_messages("bench-inbox", count=1, ack=handled[-1:])
        handled.append(message.id)
    client.ack("bench-inbox", handled[-1])
    return _rate(len(handled), time.perf_counter() - begun)


def _receive_batched(client: agentfn.Client, count: int) -> float:
    begun, received, previous = time.perf_counter(), 0, []
    while received < count:
        messages = client.read_messages("bench-inbox", count=BATCH, ack=previous)
        previous = [message.id for message in messages]
        received += len(messages)
    client.ack("bench-inbox", *previous)
    return _rate(received, time.perf_counter() - begun)


def respond(url: str) -> None:
    """The responder process: answer every message with its content until a 'stop' message."""
    client = agentfn.Client(redis.Redis.from_url(url))
    client.agent_register(RESPONDER, ["bench"], ttl_ms=3_600_000)
    print("ready", flush=True)
    while True:
        for message in client.receive(RESPONDER, None):
            if message.type == STOP:
                client.ack(RESPONDER, message.id)
                return
            client.send(RESPONDER, message.sender, "answer", message.content, reply_to=message.id)
            client.ack(RESPONDER, message.id)


def _request_reply(client: agentfn.Client, url: str, count: int) -> dict[str, float]:
    responder = subprocess.Popen(
        [sys.executable, __file__, "--respond", url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert responder.stdout is not None and responder.stdout.readline().strip() == "ready"
        client.agent_register("bench-requester", [], ttl_ms=3_600_000)
        for index in range(min(100, count)):  # warm up both sides
            client.request("bench-requester", RESPONDER, "question", index, timeout=5)
        latencies = []
        for index in range(count):
            begun = time.perf_counter()
            reply = client.request("bench-requester", RESPONDER, "question", index, timeout=5)
            latencies.append((time.perf_counter() - begun) * 1000)
            assert reply.content == index
        client.send("bench-requester", RESPONDER, STOP, None)
        responder.wait(timeout=10)
    finally:
        if responder.poll() is None:
            responder.kill()
            responder.wait()
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "request_reply_p50_ms": round(cuts[49], 3),
        "request_reply_p99_ms": round(cuts[98], 3),
        "request_reply_mean_ms": round(statistics.fmean(latencies), 3),
    }


def run(messages: int = 10_000, requests: int = 2_000) -> dict[str, Any]:
    """Measure on a private redis-server; returns the figures (rates in messages/s, times in ms)."""
    messages = min(messages, agentfn.constants.DEFAULTS["inbox_max"])  # one inbox holds them all
    with EmbeddedRedis() as server:
        connection = redis.Redis(host=server.host, port=server.port)
        agentfn.deploy(connection, "default")
        client = agentfn.Client(connection)
        client.agent_register("bench-inbox", [], ttl_ms=3_600_000)
        results: dict[str, Any] = {"messages": messages, "requests": requests}
        results["ping_per_s"] = _ping(client, messages)
        results["send_single_per_s"] = _send_single(client, messages)
        results["receive_single_per_s"] = _receive_single(client, messages)
        results["send_pipelined_per_s"] = _send_pipelined(client, messages)
        results["receive_batched_per_s"] = _receive_batched(client, messages)
        results.update(_request_reply(client, server.url, requests))
        connection.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--messages",
        type=int,
        default=10_000,
        help="messages per throughput phase (at most the inbox cap)",
    )
    parser.add_argument(
        "--requests", type=int, default=2_000, help="request/reply round trips to time"
    )
    parser.add_argument("--respond", metavar="URL", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.respond:
        respond(options.respond)
        return
    results = run(options.messages, options.requests)
    width = max(len(name) for name in results)
    for name, value in results.items():
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
