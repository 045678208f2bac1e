"""Strict JSON (RFC 8259, no duplicate keys) in every JSON argument of the library."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import redis

from agentfn.constants import LIMITS

from .helpers import (
    ROOT,
    assert_refused,
    fcall,
    pairs,
    planted_library,
    secret_of,
    snapshot,
    strict_json_ok,
)

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


# Every edge of UTF-8 (RFC 3629; Unicode's table of well-formed byte sequences): name -> the
# bytes, and the offset in them of the byte a refusal names (None: well-formed). A refusal names
# the lead byte of the character that breaks (a stray continuation byte: itself).
UTF8_EDGES: dict[str, tuple[bytes, int | None]] = {
    "U+0080, the first 2-byte": (b"\xc2\x80", None),
    "U+07FF, the last 2-byte": (b"\xdf\xbf", None),
    "U+0800, the first 3-byte": (b"\xe0\xa0\x80", None),
    "U+1000": (b"\xe1\x80\x80", None),
    "U+CFFF": (b"\xec\xbf\xbf", None),
    "U+D000": (b"\xed\x80\x80", None),
    "U+D7FF, before the surrogates": (b"\xed\x9f\xbf", None),
    "U+E000, after the surrogates": (b"\xee\x80\x80", None),
    "U+FFFD": (b"\xef\xbf\xbd", None),
    "U+FFFF, the last 3-byte": (b"\xef\xbf\xbf", None),
    "U+10000, the first 4-byte": (b"\xf0\x90\x80\x80", None),
    "U+40000": (b"\xf1\x80\x80\x80", None),
    "U+FFFFF": (b"\xf3\xbf\xbf\xbf", None),
    "U+100000": (b"\xf4\x80\x80\x80", None),
    "U+10FFFF, the last": (b"\xf4\x8f\xbf\xbf", None),
    "every form in a row": ("a\x7fé€😀\U0010ffff".encode(), None),
    "overlong NUL, 2 bytes": (b"\xc0\x80", 0),
    "overlong /, 2 bytes": (b"\xc0\xaf", 0),
    "overlong U+007F, 2 bytes": (b"\xc1\xbf", 0),
    "overlong NUL, 3 bytes": (b"\xe0\x80\x80", 0),
    "overlong /, 3 bytes": (b"\xe0\x80\xaf", 0),
    "overlong U+07FF, 3 bytes": (b"\xe0\x9f\xbf", 0),
    "overlong NUL, 4 bytes": (b"\xf0\x80\x80\x80", 0),
    "overlong /, 4 bytes": (b"\xf0\x80\x80\xaf", 0),
    "overlong U+FFFF, 4 bytes": (b"\xf0\x8f\xbf\xbf", 0),
    "U+D800, the first surrogate": (b"\xed\xa0\x80", 0),
    "U+DB7F": (b"\xed\xad\xbf", 0),
    "U+DB80": (b"\xed\xae\x80", 0),
    "U+DC00, the first low surrogate": (b"\xed\xb0\x80", 0),
    "U+DFFF, the last surrogate": (b"\xed\xbf\xbf", 0),
    "a surrogate pair (CESU-8)": (b"\xed\xa0\xbd\xed\xb8\x80", 0),
    "a surrogate after characters": ("éé".encode() + b"\xed\xa0\x80", 4),
    "U+110000": (b"\xf4\x90\x80\x80", 0),
    "U+13FFFF": (b"\xf4\xbf\xbf\xbf", 0),
    "lead F5": (b"\xf5\x80\x80\x80", 0),
    "lead F7": (b"\xf7\xbf\xbf\xbf", 0),
    "5-byte form": (b"\xf8\x88\x80\x80\x80", 0),
    "6-byte form": (b"\xfc\x84\x80\x80\x80\x80", 0),
    "FE": (b"\xfe", 0),
    "FF": (b"\xff", 0),
    "2-byte, truncated": (b"\xc2", 0),
    "3-byte, 1 byte short": (b"\xe2\x82", 0),
    "3-byte after E0, 1 byte short": (b"\xe0\xa0", 0),
    "3-byte, 2 bytes short": (b"\xef", 0),
    "4-byte, 1 byte short": (b"\xf0\x90\x80", 0),
    "4-byte, 2 bytes short": (b"\xf0\x90", 0),
    "U+10FFFF, 1 byte short": (b"\xf4\x8f\xbf", 0),
    "truncated before ASCII": (b"\xe2\x82A", 0),
    "truncated before a character": (b"\xe2\x82\xc3\xa9", 0),
    "a lead before a character": (b"\xc3\xe2\x82\xac", 0),
    "truncated after characters": ("ab écd€".encode() + b"\xc3", 10),
    "a continuation byte first": (b"\x80", 0),
    "BF first": (b"\xbf", 0),
    "two continuation bytes": (b"\x80\x80", 0),
    "a continuation byte after ASCII": (b"A\x80", 1),
    "2-byte with one too many": (b"\xc3\xa9\xa9", 0),
    "3-byte with one too many": (b"\xe2\x82\xac\xac", 0),
    "4-byte with one too many": (b"\xf0\x9f\x98\x80\x80", 0),
}


@pytest.mark.parametrize("name", UTF8_EDGES)
def test_utf8_edges(raw: redis.Redis, deployed, name: str) -> None:
    """Each edge in a JSON string, in an object key, at the end of the text (an unterminated
    string) and as free text (a failure's error): refused naming its bad byte, or accepted."""
    sequence, bad = UTF8_EDGES[name]
    assert (bad is None) == _is_utf8(sequence), "the table is wrong"
    for prefix, suffix in ((b'["', b'"]'), (b'{"', b'":1}'), (b'"', b"")):
        text = prefix + sequence + suffix
        before = snapshot(raw)
        try:
            raw.execute_command("FCALL", "agentfn_task_submit", 1, ROOT, "cap", text)
            refusal = None
        except redis.ResponseError as error:
            refusal = str(error)
            assert snapshot(raw) == before
        if bad is not None:
            offset = len(prefix) + bad
            assert refusal == f"BADARG payload is not valid JSON: invalid UTF-8 at byte {offset}"
        elif suffix:
            assert refusal is None, (text, refusal)
        else:
            assert refusal == "BADARG payload is not valid JSON: unterminated string at byte 0"
    with pytest.raises(redis.ResponseError) as info:
        raw.execute_command(
            "FCALL", "agentfn_task_fail", 1, ROOT, "none", "1-" + "0" * 40, b"x" + sequence
        )
    if bad is None:
        assert str(info.value) == "NOTFOUND task none does not exist"
    else:
        assert str(info.value) == f"BADARG error is not valid UTF-8 at byte {1 + bad}"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_the_fast_path_reduces_exactly_the_well_formed_characters(
    raw: redis.Redis, tmp_path: Path
) -> None:
    """JSON.well_formed, the fast path of JSON.check and JSON.check_utf8 (the slow search only
    names the bad byte of a refusal): every character of 2 to 4 bytes of a well-formed text
    becomes '.', ASCII stays; a text that is not UTF-8 keeps a non-ASCII byte (or gets nil).
    The edges, random byte strings and random corruptions of well-formed text, judged by Python."""
    probe = "do return JSON.well_formed(args[1]) or false end"
    raw.execute_command(
        "FUNCTION", "LOAD", "REPLACE", planted_library(tmp_path, {"agentfn_zz_well_formed": probe})
    )
    rng = random.Random(11)
    alphabet = [0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xC3, 0xDF]
    alphabet += [0xE0, 0xE1, 0xE2, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
    points = [0x41, 0x80, 0xE9, 0x7FF, 0x800, 0x20AC, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x1F600]
    points += [0x10FFFF]
    samples = [sequence for sequence, _ in UTF8_EDGES.values()]
    samples += [
        bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 9))) for _ in range(3000)
    ]
    for _ in range(1000):
        text = "".join(chr(rng.choice(points)) for _ in range(rng.randrange(1, 12))).encode()
        samples.append(text)
        corrupted = bytearray(text)
        corrupted[rng.randrange(len(text))] = rng.choice(alphabet)
        samples.append(bytes(corrupted))
    pipe = raw.pipeline(transaction=False)
    for sample in samples:
        pipe.execute_command("FCALL", "agentfn_zz_well_formed", 1, ROOT, sample)
    replies = pipe.execute()
    assert sum(_is_utf8(sample) for sample in samples) > 1000
    for sample, reduced in zip(samples, replies, strict=True):
        if _is_utf8(sample):
            expected = "".join(c if c < "\x80" else "." for c in sample.decode()).encode()
            assert reduced == expected, sample
        else:
            assert reduced is None or max(reduced, default=0) >= 0x80, (sample, reduced)


def test_the_json_arguments_of_one_call_hold_a_bounded_number_of_values(
    r: redis.Redis, raw: redis.Redis, deployed
) -> None:
    """json_values bounds the strict check's work per call whatever the shape: tiny values fill
    64 KiB with 32,767 of them (~12 ms); one more value or key than the budget, in one argument
    or spread over several of one call, is LIMIT with nothing written; each call has its own."""
    budget = LIMITS["json_values"]
    zeros = "[" + ",".join(["0"] * (budget - 1)) + "]"  # the array and its values: the budget
    assert len(zeros) <= LIMITS["json_bytes"]
    first = pairs(fcall(r, "agentfn_task_submit", "cap", zeros))["id"]
    second = pairs(fcall(r, "agentfn_task_submit", "cap", zeros))["id"]  # a new call, a new budget
    assert raw.hget(f"{ROOT}:task:{second}", "payload") == zeros.encode() and first != second
    one_more = "[" + ",".join(["0"] * budget) + "]"
    message = assert_refused(r, raw, "LIMIT", "agentfn_task_submit", "cap", one_more)
    assert message == (
        f"LIMIT payload: the JSON arguments of one call may hold at most {budget} values and "
        "object keys in all"
    )
    records = budget // 5 + 1  # per record: itself, 2 keys, 2 values (3 without the keys)
    keys = "[" + ",".join(['{"a":0,"b":0}'] * records) + "]"  # under the budget but for its keys
    assert len(keys) <= LIMITS["json_bytes"] and 1 + records * 3 < budget
    assert_refused(r, raw, "LIMIT", "agentfn_task_submit", "cap", keys)
    half = "[" + ",".join(["0"] * (budget // 2)) + "]"
    message = assert_refused(
        r, raw, "LIMIT", "agentfn_task_submit_many", 2, "cap", half, "cap", half
    )
    assert message.startswith("LIMIT payload of item 2: ")
