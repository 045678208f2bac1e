"""Adversarial calls of every registered function: each is refused with a coded error and changes
nothing (keys, types, DUMP, expiry times, no Pub/Sub message), or is a success the case expects.

The functions and their arguments come from the Lua headers (agentfn.library.protocol), so a new
function is covered without editing this file. A seeded generator mutates one thing of a valid
call against a populated namespace: arity, numkeys and keys (another namespace), numbers in odd
spellings, empty and 1 MiB strings, invalid UTF-8, bad / nested / duplicate-key JSON, unknown,
duplicate and valueless options, ids of the wrong kind or with ``: { } * \\n``, message ids out of
64-bit range, agent secrets that are wrong (another agent's, a fresh one: DENIED) or malformed
(short, long, odd characters: BADARG), claim tokens that are stale (STALE), forged (the right attempt
with other hex, another task's token: DENIED) or malformed (the attempt alone, wrong length:
BADARG); a function that takes many items (``ARGV[1] count``) is driven with one item (the
running task's for complete_many, which may refuse an item in its reply instead: nothing changes).
AGENTFN_ADVERSARIAL_CASES sets how many cases (default 1,500; 50,000 for a long run), AGENTFN_ADVERSARIAL_SEED the seed.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from agentfn.errors import ErrorCode
from agentfn.library.protocol import FunctionSpec, Param, load_specs

from .helpers import ROOT, pairs, strict_json_ok

CASES = int(os.environ.get("AGENTFN_ADVERSARIAL_CASES", "1500"))
SEED = int(os.environ.get("AGENTFN_ADVERSARIAL_SEED", "1130"))
BATCH = 100
MIB = 1_048_576
#: The codes a refusal may carry: every library code but INTERNAL (a defect).
REFUSAL_CODES = {code.value for code in ErrorCode} - {ErrorCode.INTERNAL.value}
OTHER_NAMESPACE = "agentfn:{adversarial-other}"


@dataclass
class Case:
    function: str
    keys: list[str]
    args: list[Any]
    expect: str
    """refused (a coded error), unchanged (a coded error or a success; no change either way),
    success (a success that changes nothing)."""
    label: str


# -- The populated namespace and the valid value of each parameter ------------------------------


def _call(r: redis.Redis, function: str, *args: Any) -> Any:
    return r.execute_command("FCALL", function, 1, ROOT, *args)


def populate(r: redis.Redis) -> dict[str, Any]:
    """Agents, tasks in every state, workflows, an inbox with read and unread messages."""
    hour = "3600000"
    a1, a2 = secrets.token_hex(16), secrets.token_urlsafe(32)  # hex, and base64url
    _call(
        r, "agentfn_agent_register", "a1", a1, "cap,review", "TTL_MS", hour, "METADATA", '{"h":1}'
    )
    _call(r, "agentfn_agent_register", "a2", a2, "other", "TTL_MS", hour)
    workflow = pairs(
        _call(
            r,
            "agentfn_wf_create",
            '{"steps":[{"id":"ask","capability":"review"}]}',
            "CONTEXT",
            '{"k":1}',
        )
    )["id"]
    asked = pairs(_call(r, "agentfn_task_claim", "a1", a1)[1][0])
    _call(
        r, "agentfn_task_complete", asked["id"], asked["token"], "null", "INPUT_REQUIRED", '{"q":1}'
    )
    _call(
        r,
        "agentfn_wf_create",
        '{"chain":true,"steps":[{"id":"s1","capability":"x"},{"id":"s2","capability":"x"}]}',
    )
    _call(r, "agentfn_task_submit", "cap", '{"n":1}', "MAX_ATTEMPTS", "1")
    dead = pairs(_call(r, "agentfn_task_claim", "a1", a1)[1][0])
    _call(r, "agentfn_task_fail", dead["id"], dead["token"], "boom")
    _call(r, "agentfn_task_submit", "other", "[]")
    done = pairs(_call(r, "agentfn_task_claim", "a2", a2)[1][0])
    _call(r, "agentfn_task_complete", done["id"], done["token"], '{"ok":true}')
    _call(r, "agentfn_task_submit", "cap", '{"n":2}', "IDEMPOTENCY_KEY", "k1")
    running = pairs(_call(r, "agentfn_task_claim", "a1", a1)[1][0])
    _call(r, "agentfn_task_submit", "cap", '{"n":3}')
    _call(r, "agentfn_task_submit", "cap", '{"n":4}', "DELAY_MS", hour)
    messages = [
        pairs(
            _call(r, "agentfn_msg_send", "a2", "a1", "chat", json.dumps({"i": i}), "TTL_MS", hour)
        )["id"]
        for i in range(3)
    ]
    _call(r, "agentfn_msg_read", "a1", a1, "COUNT", "1")
    attempt = int(running["attempt"])
    assert running["token"].startswith(f"{attempt}-") and dead["token"].startswith(f"{attempt}-")
    return {
        "agent_id": "a1",
        "secret": a1,
        "from": "a2",
        "to": "a1",
        "task_id": running["id"],
        "token": running["token"],
        "workflow_id": workflow,
        "step_id": "ask",
        "message_ids": ",".join(messages[:2]),
        "message_id": messages[0],
        "capability": "cap",
        "capabilities": "cap,review",
        "type": "chat",
        "error": "boom",
        "definition": '{"steps":[{"id":"s","capability":"cap"}]}',
        "others": {
            "task_id": [workflow, "a1", dead["id"] + "0", "ask"],
            "workflow_id": [running["id"], "a1", "w999"],
            "step_id": ["a1", running["id"], "s1"],
            "agent_id": [running["id"], workflow, "ghost"],
        },
        "stale_tokens": [
            f"{attempt + 1}-{secrets.token_hex(20)}",
            f"{attempt + 9}-{running['token'].split('-', 1)[1]}",
        ],
        "forged_tokens": [
            f"{attempt}-{secrets.token_hex(20)}",  # the right attempt, other hex
            dead["token"],  # another task's token, of the same attempt number
            asked["token"],
        ],
        "bad_tokens": [
            str(attempt),  # the attempt alone, as before protocol 3.0
            running["token"].upper(),
            running["token"][:-1],
            running["token"] + "0",
            running["token"].replace("-", "_"),
            running["token"].split("-", 1)[1],
            f"-{running['token']}",
            running["token"] + "\n",
        ],
        "wrong_secrets": [a2, secrets.token_hex(16), a1[:-1] + ("0" if a1[-1] != "0" else "1")],
        "finished_task": done["id"],
        "count": "1",  # the items of a function that takes many (one: the running task's)
    }


def kind_of(param: Param, option: bool) -> str:
    """What a parameter holds, from its header line: json, secret, token, int, ids, msgid, enum,
    text, csv or id."""
    value, description = param.value, param.description
    if "JSON" in description or value in ("json", "prompt"):
        return "json"
    if param.name == "secret":
        return "secret"
    if param.name == "token":
        return "token"
    if value in ("n", "ms") or param.name == "count":
        return "int"
    if param.name == "message_ids" or value == "message_ids":
        return "ids"
    if value == "message_id":
        return "msgid"
    if "|" in value or value == "level":
        return "enum"
    if param.name == "error":
        return "text"
    if param.name == "capabilities":
        return "csv"
    return "id"


OPTION_VALUES = {
    "ms": "60000",
    "n": "1",
    "json": "{}",
    "prompt": "{}",
    "level": "high",
    "key": "k9",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
}


def valid_value(param: Param, option: bool, pool: dict[str, Any]) -> str:
    if option:
        if param.value in OPTION_VALUES:
            return OPTION_VALUES[param.value]
        if "|" in param.value:
            return param.value.split("|")[0]
        return str(pool.get(param.value, "x"))
    if param.name in pool:
        return str(pool[param.name])
    return '{"k":1}' if kind_of(param, option) == "json" else "x"


# -- Bad values ---------------------------------------------------------------------------------

BAD_IDS = [
    "",
    " ",
    "a b",
    "a:b",
    "a{b}",
    "{",
    "}",
    "*x",
    "a*",
    "a\nb",
    "\n",
    "\xff".encode("latin-1"),
    b"a\xc3",
    "é",
    "a\x00b",
    "x" * 129,
    "t1:",
    "{default}",
    "agentfn:{default}",
]
BAD_INTS = [
    "",
    "+1",
    "1.0",
    "1.",
    "1e3",
    "0x10",
    " 1",
    "1 ",
    "01",
    "-0",
    "00",
    "١",
    "1_000",
    "Infinity",
    "nan",
    "-1",
    "9" * 17,
    "99999999999999999999",
    "1,2",
    "--1",
    "0b1",
    "1\n",
]
BAD_MESSAGE_IDS = [
    "",
    "1",
    "1-",
    "-1",
    "-1-0",
    "a-b",
    "1-0 ",
    " 1-0",
    "1-0\n",
    "01-0",
    "1-01",
    "1.0-0",
    "18446744073709551616-0",
    "1-18446744073709551616",
    "99999999999999999999-0",
    "184467440737095516150-0",
    "1-0-0",
    "*",
    "+",
    "-",
    "1-*",
    "\xff".encode("latin-1"),
]
BAD_ENUMS = ["", "maybe", "YES", "Yes ", "urgent", "MERGE", "1", "true", "x" * 300]
#: Secrets of the wrong form (32 to 128 of [A-Za-z0-9_-] is the form): BADARG.
BAD_SECRETS = [
    "",
    "a" * 31,
    "a" * 129,
    "a" * 31 + "+",
    "a" * 31 + "/",
    "a" * 31 + "=",
    "a" * 31 + ".",
    "a" * 31 + ":",
    "a" * 31 + " ",
    " " + "a" * 32,
    "a" * 32 + "\n",
    "a" * 16 + "\x00" + "a" * 16,
    "é" * 32,
    "\xff".encode("latin-1") * 32,
    "{" + "a" * 32 + "}",
    "*" * 32,
]
BAD_JSON = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"0x1F",
    b"01",
    b"+1",
    b"1.",
    b".5",
    b"[1,]",
    b'{"a":1,}',
    b"{a:1}",
    b"'a'",
    b"tru",
    b'"a\x01"',
    b'"\\x"',
    b'"\\ud800"',
    b'"\xff"',
    b'"\xc0\xaf"',
    b'{"a":1}\x00junk',
    b'{"a":1} x',
    b"[] []",
    b"\x0b[]",
    b"",
    b" ",
    b"{",
    b"[",
    b'"',
    b"[" * 129 + b"]" * 129,
]


def duplicate_key_json(rng: random.Random) -> bytes:
    """A nested JSON object with one object, at a random depth, holding a key twice."""
    depth = rng.randrange(5)
    key = rng.choice(["a", "steps", "id", "é", "\\u0061"])
    twin = "a" if key == "\\u0061" else key
    value = rng.choice(["2", "{}", "[]", '"v"'])
    inner = f'{{"{key}":1,"x":[true,null],"{twin}":{value}}}'
    for _ in range(depth):
        inner = rng.choice([f'{{"o":{inner}}}', f"[1,{inner}]", f'{{"p":[{inner}]}}'])
    return inner.encode()


def corrupt_json(rng: random.Random) -> bytes | None:
    """A random byte change of a valid document that makes it invalid (checked with Python), or None."""
    text = bytearray(
        json.dumps(
            {"a": [1, 2.5, "s\u00e9", None, True], "b": {"c": -3}}, ensure_ascii=False
        ).encode()
    )
    position = rng.randrange(len(text))
    text[position] = rng.choice(b'{}[],:"\\-+.eE0x\x00\x01\x7f\xff\xc3 ')
    return None if strict_json_ok(bytes(text)) else bytes(text)


def bad_values(
    kind: str, name: str, spec: FunctionSpec, pool: dict[str, Any], rng: random.Random
) -> list[Any]:
    """Values of a parameter of this kind that the function must refuse."""
    if kind == "json":
        values = [rng.choice(BAD_JSON), duplicate_key_json(rng), b'"' + b"a" * MIB + b'"']
        corrupted = corrupt_json(rng)
        return values + ([corrupted] if corrupted else [])
    if kind == "int":
        return list(BAD_INTS)
    if kind == "secret":
        return BAD_SECRETS + pool["wrong_secrets"] + ["a" * MIB]
    if kind == "token":
        return (
            BAD_INTS
            + pool["bad_tokens"]
            + pool["stale_tokens"]
            + pool["forged_tokens"]
            + ["1-" + "a" * MIB]
        )
    if kind in ("ids", "msgid"):
        values = list(BAD_MESSAGE_IDS)
        if kind == "ids":
            good = pool["message_id"]
            values += [
                ",",
                good + ",",
                "," + good,
                good + ",," + good,
                good + ",18446744073709551616-0",
                good + ",99999999999999999999-0",
                ",".join([good] * 1001),
            ]
        return values
    if kind == "enum":
        return list(BAD_ENUMS)
    if kind == "text":
        return [b"\xff", b"a\xc3", b"\xed\xa0\x80", "x" * 8193, "x" * MIB]
    values = [value for value in BAD_IDS if not (kind == "csv" and value == "")] + ["x" * MIB]
    others = pool["others"].get(name)
    if others and (name != "agent_id" or {"NOTFOUND", "LAPSED"} & set(spec.errors)):
        values += others
    return values


# -- The generator ------------------------------------------------------------------------------


def generate(
    specs: dict[str, FunctionSpec], pool: dict[str, Any], count: int, seed: int
) -> list[Case]:
    rng = random.Random(seed)
    names = sorted(specs)
    cases: list[Case] = []
    while len(cases) < count:
        spec = specs[names[len(cases) % len(names)]]
        cases.append(one_case(spec, pool, rng))
    return cases


def one_case(spec: FunctionSpec, pool: dict[str, Any], rng: random.Random) -> Case:
    positional = [valid_value(param, False, pool) for param in spec.argv]
    chosen = [option for option in spec.options if rng.random() < 0.3]
    options: list[Any] = []
    for option in chosen:
        options += [option.name, valid_value(option, True, pool)]
    # A function that refuses items one by one in its reply (complete_many: a stale, forged or
    # unknown item; the others would complete) may succeed and change nothing; one that is
    # all-or-nothing (submit_many) refuses.
    per_item = spec.item_args and "refused" in spec.returns
    expect = "unchanged" if spec.read_only or per_item else "refused"
    keys = [ROOT]
    mutations = ["keys", "arity", "unknown_option"]
    if spec.argv:
        mutations += ["positional"] * 6
    if spec.options:
        mutations += ["option"] * 3 + ["duplicate_option", "valueless_option"]
    if spec.read_only:
        mutations.append("valid")
    mutation = rng.choice(mutations)
    label = mutation
    if mutation == "valid":
        return Case(spec.name, keys, positional + options, "success", "valid call")
    if mutation == "keys":
        keys = rng.choice(
            [
                [],
                [ROOT, ROOT + ":x"],
                [OTHER_NAMESPACE],
                [ROOT + ":meta"],
                ["agentfn:default"],
                ["agentfn:{}"],
                ["agentfn:{a:b}"],
                ["agentfn:{" + "n" * 65 + "}"],
                ["agentfn:{default"],
                [b"agentfn:{\xff}"],
                ["AGENTFN:{default}"],
            ]
        )
        label = f"keys {keys!r}"
    elif mutation == "arity":
        if positional and rng.random() < 0.5:
            positional = positional[: rng.randrange(len(positional))]
            options = []
            label = f"only {len(positional)} positional"
        else:
            options.append(rng.choice([option.name for option in spec.options] or ["X"]))
            label = "dangling option name"
    elif mutation == "unknown_option":
        name = rng.choice(
            [
                "COLOR",
                "BLOCK",
                "COUNT ",
                "",
                "x" * 1000,
                "TTL-MS",
                "\xff".encode("latin-1"),
                "LIMIT\n",
            ]
        )
        name = name if name not in spec.option_names else "COLOR"
        options += [name, "1"]
        label = f"unknown option {name!r}"
    elif mutation == "duplicate_option":
        option = rng.choice(spec.options)
        value = valid_value(option, True, pool)
        options += [option.name, value, rng.choice([option.name, option.name.lower()]), value]
        label = f"duplicate option {option.name}"
    elif mutation == "valueless_option":
        options.append(rng.choice(spec.options).name)
        label = "valueless option"
    elif mutation == "positional":
        index = rng.randrange(len(spec.argv))
        param = spec.argv[index]
        value = rng.choice(bad_values(kind_of(param, False), param.name, spec, pool, rng))
        positional[index] = value
        label = f"{param.name} = {short(value)}"
    else:
        option = rng.choice(spec.options)
        value = rng.choice(bad_values(kind_of(option, True), option.value, spec, pool, rng))
        options = [
            item
            for pair in zip(options[::2], options[1::2], strict=True)
            if pair[0] != option.name
            for item in pair
        ]
        options += [option.name, value]
        label = f"{option.name} {short(value)}"
    return Case(spec.name, keys, positional + options, expect, label)


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}...({len(value)} bytes)"


# -- Running and checking -----------------------------------------------------------------------


def keyspace(raw: redis.Redis) -> dict[bytes, tuple[Any, ...]]:
    """Every key with its type, DUMP and absolute expiry time (PEXPIRETIME: the clock moves on)."""
    keys = sorted(raw.scan_iter(count=1000))
    pipe = raw.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.dump(key)
        pipe.execute_command("PEXPIRETIME", key)
    values = pipe.execute()
    return {key: tuple(values[3 * i : 3 * i + 3]) for i, key in enumerate(keys)}


def restore(raw: redis.Redis, snapshot: dict[bytes, tuple[Any, ...]]) -> None:
    raw.flushall()
    for key, (_, dump, expire_at) in snapshot.items():
        raw.restore(key, max(expire_at, 0), dump, absttl=expire_at > 0)


def published(pubsub: redis.client.PubSub, raw: redis.Redis, marker: int) -> list[Any]:
    """The Pub/Sub messages that arrived before a marker published now."""
    raw.publish("adversarial-marker", str(marker))
    seen = []
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, "the Pub/Sub marker did not arrive"
        message = pubsub.get_message(timeout=1)
        if message is None or message["type"] != "pmessage":
            continue  # the subscription's confirmation, or nothing yet
        if message["channel"] == b"adversarial-marker" and message["data"] == str(marker).encode():
            return seen
        seen.append(message)


def verdict(case: Case, reply: Any) -> str | None:
    """Why the reply breaks the case's expectation, or None."""
    if isinstance(reply, redis.ResponseError):
        code = str(reply).split(" ", 1)[0]
        if code not in REFUSAL_CODES:
            return f"raw or internal error: {str(reply)[:300]}"
        if len(str(reply)) > 1_000:
            return f"a refusal of {len(str(reply)):,} characters: {str(reply)[:100]}..."
        return "expected a success" if case.expect == "success" else None
    if isinstance(reply, Exception):
        return f"client error {reply!r}"
    return "succeeded" if case.expect == "refused" else None


def run_batch(raw: redis.Redis, cases: list[Case]) -> list[Any]:
    pipe = raw.pipeline(transaction=False)
    for case in cases:
        pipe.execute_command("FCALL", case.function, len(case.keys), *case.keys, *case.args)
    return pipe.execute(raise_on_error=False)


def describe(case: Case) -> str:
    return f"{case.function} [{case.label}]"


@pytest.fixture
def populated(raw: redis.Redis, deployed: redis.Redis) -> dict[str, Any]:
    return populate(deployed)


def test_generator_covers_every_registered_function(deployed: redis.Redis) -> None:
    (library,) = deployed.execute_command("FUNCTION", "LIST", "LIBRARYNAME", "agentfn")
    registered = {function["name"] for function in library["functions"]}
    assert registered == set(load_specs())
    cases = generate(load_specs(), populate(deployed), 20 * len(registered), SEED)
    assert {case.function for case in cases} == registered
    assert {case.label.split(" ")[0] for case in cases} >= {
        "keys",
        "duplicate",
        "valueless",
        "unknown",
        "only",
    }


def test_adversarial_calls_are_refused_without_a_trace(
    raw: redis.Redis, populated: dict[str, Any]
) -> None:
    cases = generate(load_specs(), populated, CASES, SEED)
    pubsub = raw.pubsub()
    pubsub.psubscribe("*")
    failures: list[str] = []
    outcomes = {"refused": 0, "success": 0}
    for start in range(0, len(cases), BATCH):
        batch = cases[start : start + BATCH]
        before = keyspace(raw)
        replies = run_batch(raw, batch)
        for case, reply in zip(batch, replies, strict=True):
            problem = verdict(case, reply)
            if problem:
                failures.append(f"{describe(case)}: {problem}")
            outcomes["refused" if isinstance(reply, Exception) else "success"] += 1
        changed = keyspace(raw) != before
        messages = published(pubsub, raw, start)
        if changed or messages:
            failures += find_culprits(raw, pubsub, before, batch, messages)
            restore(raw, before)
        assert not failures, "\n".join(failures[:40])
    pubsub.close()
    assert outcomes["refused"] >= CASES * 0.9, outcomes
    print(f"{len(cases)} adversarial cases (seed {SEED}): {outcomes}")


def find_culprits(
    raw: redis.Redis,
    pubsub: redis.client.PubSub,
    before: dict[bytes, tuple[Any, ...]],
    batch: list[Case],
    messages,
) -> list[str]:
    """Run the batch's cases one at a time from the state before it: the ones that left a trace."""
    culprits = []
    for index, case in enumerate(batch):
        restore(raw, before)
        start = keyspace(raw)
        reply = run_batch(raw, [case])[0]
        trace = published(pubsub, raw, -1 - index)
        if keyspace(raw) != start or trace:
            culprits.append(
                f"{describe(case)}: left a trace (reply {short(reply)}, published {trace[:2]})"
            )
    return culprits or [f"batch left a trace no single case reproduces: published {messages[:3]}"]
