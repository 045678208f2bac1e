"""Strict JSON (RFC 8259, no duplicate keys) in every JSON argument of the library."""

from __future__ import annotations

import json
import random

import pytest
import redis

from .helpers import ROOT, assert_refused, fcall, pairs, secret_of, snapshot, strict_json_ok

# Texts cjson.decode accepts (or chokes on) that are not one RFC 8259 JSON value.
REFUSED = [
    b"NaN",
    b"-Infinity",
    b"Infinity",
    b"[nan]",
    b"0x1F",
    b"01",
    b"-01",
    b"+1",
    b"1.",
    b".5",
    b"1.e3",
    b"1e",
    b"1e+",
    b"-",
    b"--1",
    b"[1,]",
    b'{"a":1,}',
    b"[,1]",
    b"{,}",
    b'{"a"}',
    b'{"a" 1}',
    b"{a:1}",
    b"{'a':1}",
    b"'a'",
    b"tru",
    b"truex",
    b"nul",
    b"True",
    b"[1 2]",
    b"[",
    b"]",
    b"{",
    b'"abc',
    b'"a\x01b"',
    b'"tab\there"',
    b'"nl\nhere"',
    b'"\\x41"',
    b'"\\u12"',
    b'"\\u12G4"',
    b'"\\ud800"',
    b'"\\udc00"',
    b'"\\ud800\\u0041"',
    b'"\\ud800x"',
    b'"\xff"',
    b'"\xc0\xaf"',
    b'"\xe0\x80\xaf"',
    b'"\xed\xa0\x80"',
    b'"\xf4\x90\x80\x80"',
    b'"\xc3"',
    b'"\x80"',
    b'{"a":1}\x00junk',
    b'{"a":1}\x00',
    b'{"a":1} x',
    b'{"a":1}{"b":2}',
    b"1 2",
    b'{"a":1,"a":2}',
    b'{"a":{"b":1,"b":1}}',
    b'[{"x":[{"k":1,"k":2}]}]',
    b'{"a":1,"\\u0061":2}',
    b'{"steps":1,"steps":2}',
    b"\x0b1",
    b"\x0c{}",
    b"[" * 129 + b"]" * 129,
]

ACCEPTED = [
    b"0",
    b"-0",
    b"-0.0e-0",
    b"1E+2",
    b"12.5e10",
    b"-123456789012345678901234567890",
    b"1e400",
    b"true",
    b"false",
    b"null",
    b'""',
    b'"\\u0000"',
    b'"\\ud83d\\ude00"',
    b'"\\"\\\\\\/\\b\\f\\n\\r\\t"',
    '"é€😀\u07ff\uffff"'.encode(),
    b' \t\n\r[ 1 , {} , [] , {"a" : [ ] } ] \r\n',
    b'{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}',
    b'{"":1,"A":2,"a":3}',
    b"[" * 128 + b"]" * 128,
    b'"\x7f"',
]


@pytest.mark.parametrize("text", REFUSED, ids=repr)
def test_refused_in_a_payload(raw: redis.Redis, deployed, text: bytes) -> None:
    before = snapshot(raw)
    with pytest.raises(redis.ResponseError) as info:
        raw.execute_command("FCALL", "agentfn_task_submit", 1, ROOT, "cap", text)
    assert str(info.value).startswith("BADARG payload is not valid JSON"), info.value
    assert snapshot(raw) == before


@pytest.mark.parametrize("text", ACCEPTED, ids=repr)
def test_accepted_and_stored_verbatim(raw: redis.Redis, deployed, text: bytes) -> None:
    reply = raw.execute_command("FCALL", "agentfn_task_submit", 1, ROOT, "cap", text)
    task_id = reply[1].decode()
    assert raw.hget(f"{ROOT}:task:{task_id}", "payload") == text


def _random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 7, 10**20, -(10**20), 0.5, -2.25e-7, 1e300])
    if kind in (2, 3):
        alphabet = 'ab"\\/\b\f\n\r\t\x00\x1f\x7f é€😀\u2028'
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(8)))
    if kind == 4:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = {"".join(rng.choice("ab\n😀") for _ in range(rng.randrange(4))) for _ in range(4)}
    return {key: _random_value(rng, depth + 1) for key in keys}


def test_what_python_writes_is_accepted(raw: redis.Redis, deployed) -> None:
    rng = random.Random(11)
    pipe = raw.pipeline(transaction=False)
    texts = []
    for _ in range(300):
        value = _random_value(rng)
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1]))
        texts.append(text.encode())
        pipe.execute_command("FCALL", "agentfn_task_submit", 1, ROOT, "cap", texts[-1])
    replies = pipe.execute(raise_on_error=False)
    for text, reply in zip(texts, replies, strict=True):
        assert not isinstance(reply, Exception), (text, reply)
        assert raw.hget(f"{ROOT}:task:{reply[1].decode()}", "payload") == text


def test_every_json_argument_is_checked(r: redis.Redis, raw: redis.Redis, deployed) -> None:
    """Each JSON argument refuses a duplicate key and names itself."""
    bad = '{"a":1,"a":1}'
    fcall(r, "agentfn_agent_register", "a1", secret_of("a1"), "cap")
    wf = pairs(fcall(r, "agentfn_wf_create", '{"steps":[{"id":"s","capability":"cap"}]}'))["id"]
    claimed = fcall(r, "agentfn_task_claim", "a1", secret_of("a1"))
    task = pairs(claimed[1][0])
    calls = [
        ("payload", "agentfn_task_submit", ["cap", bad]),
        ("METADATA", "agentfn_agent_register", ["a2", secret_of("a2"), "cap", "METADATA", bad]),
        ("result", "agentfn_task_complete", [task["id"], task["token"], bad]),
        (
            "INPUT_REQUIRED",
            "agentfn_task_complete",
            [task["id"], task["token"], "{}", "INPUT_REQUIRED", bad],
        ),
        ("content", "agentfn_msg_send", ["a2", "a1", "chat", bad]),
        ("content", "agentfn_msg_broadcast", ["a2", "*", "chat", bad]),
        ("document", "agentfn_ctx_set", [wf, bad]),
        ("value", "agentfn_wf_signal", [wf, "s", bad]),
        (
            "CONTEXT",
            "agentfn_wf_create",
            ['{"steps":[{"id":"s","capability":"c"}]}', "CONTEXT", bad],
        ),
        ("definition", "agentfn_wf_create", ['{"steps":[{"id":"s","capability":"c","id":"t"}]}']),
    ]
    for name, function, args in calls:
        message = assert_refused(r, raw, "BADARG", function, *args)
        assert name in message and "duplicate object key" in message, (function, message)


def test_duplicate_steps_key_is_refused(r: redis.Redis, raw: redis.Redis, deployed) -> None:
    """The walk of the raw text and cjson can no longer disagree on which member counts."""
    for definition in [
        '{"steps":[1,2],"steps":[{"id":"a","capability":"c"}]}',
        '{"steps":1,"steps":[{"id":"a","capability":"c","input":{"q":1}}]}',
    ]:
        assert_refused(r, raw, "BADARG", "agentfn_wf_create", definition)


def test_utf8_is_judged_as_python_judges_it(raw: redis.Redis, deployed) -> None:
    """Random byte strings inside a JSON string: accepted exactly when they are UTF-8 (RFC 3629)."""
    rng = random.Random(5)
    alphabet = [
        0x41,
        0x7F,
        0x80,
        0x8F,
        0x90,
        0x9F,
        0xA0,
        0xBF,
        0xC0,
        0xC2,
        0xDF,
        0xE0,
        0xE2,
        0xED,
        0xEF,
    ]
    alphabet += [0xF0, 0xF3, 0xF4, 0xF5, 0xFF]
    samples = [bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 7))) for _ in range(600)]
    pipe = raw.pipeline(transaction=False)
    for sample in samples:
        pipe.execute_command("FCALL", "agentfn_task_submit", 1, ROOT, "cap", b'["' + sample + b'"]')
    for sample, reply in zip(samples, pipe.execute(raise_on_error=False), strict=True):
        try:
            sample.decode("utf-8")
            valid = True
        except UnicodeDecodeError:
            valid = False
        if valid:
            assert not isinstance(reply, Exception), (sample, reply)
        else:
            assert isinstance(reply, redis.ResponseError), sample
            assert "invalid UTF-8" in str(reply), (sample, reply)


def test_random_corruptions_are_judged_as_the_oracle_judges_them(
    raw: redis.Redis, deployed
) -> None:
    """One to three random byte changes of valid documents: JSON.check agrees with the test's own
    strict oracle (Python's json with duplicate keys, NaN and lone surrogates refused)."""
    rng = random.Random(23)
    alphabet = b'{}[],:"\\-+.eE0123x nul\x00\x01\t\n\x7f\xc3\xa9\xe2\x82\xac\xff'
    texts = []
    for _ in range(800):
        text = bytearray(json.dumps(_random_value(rng), ensure_ascii=rng.random() < 0.5).encode())
        for _ in range(rng.randrange(1, 4)):
            position = rng.randrange(len(text) + 1)
            if rng.random() < 0.5 and position < len(text):
                del text[position]
            else:
                text[position:position] = bytes([rng.choice(alphabet)])
        texts.append(bytes(text))
    pipe = raw.pipeline(transaction=False)
    for text in texts:
        pipe.execute_command("FCALL", "agentfn_task_submit", 1, ROOT, "cap", text)
    for text, reply in zip(texts, pipe.execute(raise_on_error=False), strict=True):
        accepted = not isinstance(reply, Exception)
        if not accepted:
            assert str(reply).startswith(("BADARG payload", "LIMIT")), (text, reply)
        assert accepted == strict_json_ok(text), (text, reply)
