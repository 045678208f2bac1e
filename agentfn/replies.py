"""Reply decoding: the helpers that turn a library reply (flat arrays of strings) into Python values."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def decode_reply(reply: Any) -> Any:
    """bytes to str, recursively, so that replies look the same whatever decode_responses is."""
    if isinstance(reply, bytes):
        return reply.decode("utf-8")
    if isinstance(reply, list):
        return [decode_reply(item) for item in reply]
    return reply


def pairs(flat: Sequence[Any]) -> dict[str, Any]:
    """A flat field/value array as a dict."""
    return {flat[index]: flat[index + 1] for index in range(0, len(flat) - 1, 2)}


def as_int(value: Any, default: int = 0) -> int:
    """An integer field that may be empty."""
    return int(value) if value not in (None, "") else default


def as_optional_int(value: Any) -> int | None:
    """An integer field that may be empty (None when it is)."""
    return int(value) if value not in (None, "") else None


def as_text(value: Any) -> str:
    """A value from a connection that may not decode (bytes) as text."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def as_optional_text(value: Any) -> str | None:
    """A text field that may be empty (None when it is)."""
    return value if value not in (None, "") else None


def as_json(value: Any, default: Any = None) -> Any:
    """A JSON field that may be empty."""
    return json.loads(value) if value not in (None, "") else default


def as_stored_json(value: Any, default: Any = None) -> Any:
    """A JSON field of a record shown as stored (task and workflow views): decoded, or its raw
    text when it is not valid JSON (written before the library checked JSON strictly, or by a
    raw HSET), so that one bad field does not hide the whole record."""
    try:
        return as_json(value, default)
    except ValueError:
        return value


def range_entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """The entries of an XRANGE or XREVRANGE reply as (id, fields), with text values."""
    return [
        (
            as_text(entry_id),
            {as_text(name): as_text(value) for name, value in (fields or {}).items()},
        )
        for entry_id, fields in reply or []
    ]


def xread_entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """The entries of an XREAD reply, every stream's in order, as range_entries gives them,
    under RESP2 or RESP3 ([] when the read timed out)."""
    if isinstance(reply, dict):  # RESP3: {stream: [[entry, ...]]}
        batches = [
            batch[0] if batch and isinstance(batch[0], list) else batch for batch in reply.values()
        ]
    else:  # RESP2: [[stream, [entry, ...]], ...]
        batches = [item[1] for item in reply or []]
    return [entry for batch in batches for entry in range_entries(batch)]
