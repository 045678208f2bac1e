"""Argument encoding and reply decoding shared by every API method (sync and asyncio alike)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Any, TypeVar, overload

from ...errors import AgentfnError
from ...library.protocol import load_specs
from ...replies import pairs

T = TypeVar("T")

#: A reply parser: turns the decoded reply into the method's return value.
Parser = Callable[[Any], Any]


def json_text(value: Any) -> str:
    """A value as compact JSON text: payloads, results, prompts and message content travel so."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@overload
def one_field(name: str) -> Callable[[Any], str]: ...
@overload
def one_field(name: str, convert: Callable[[Any], T]) -> Callable[[Any], T]: ...
def one_field(name: str, convert: Callable[[Any], Any] = str) -> Parser:
    """The parser of a record reply whose method returns one field of it, converted."""
    return lambda reply: convert(pairs(reply)[name])


def encode_value(value: Any) -> str:
    """One ARGV value as the library expects it (ARCHITECTURE.md rule 9: plain strings)."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        return str(int(value))
    if isinstance(value, (dict, list, tuple)):
        return json_text(value)
    raise TypeError(f"cannot send a {type(value).__name__} to the library")


def build_call(
    name: str, root: str, positional: Sequence[Any], options: Mapping[str, Any] | None = None
) -> tuple[str, list[str | int]]:
    """The FCALL (or FCALL_RO) command and arguments for one function, checked against its spec.

    A mismatch with the function's header (a wrong count of positional values, an option the
    function does not declare) is a programming error and raises TypeError before anything is sent.
    """
    spec = load_specs().get(name)
    if spec is None:
        raise TypeError(f"the library has no function {name}")
    if spec.item_args:
        items, rest = divmod(len(positional) - 1, spec.item_args)
        if rest or items < 1 or positional[0] != items:
            raise TypeError(
                f"{name} takes a count, then that many items of {spec.item_args} values"
            )
    elif len(positional) != len(spec.argv):
        raise TypeError(f"{name} takes {len(spec.argv)} positional values, got {len(positional)}")
    args: list[str | int] = [name, 1, root]
    args.extend(encode_value(value) for value in positional)
    for option, value in (options or {}).items():
        if value is None:
            continue
        if option not in spec.option_names:
            raise TypeError(f"{name} has no option {option}")
        args.extend((option, encode_value(value)))
    return ("FCALL_RO" if spec.read_only else "FCALL"), args


class ApiBase:
    """What every API mixin relies on: one call helper, provided by Client or AsyncClient.

    The mixins' methods are typed as the synchronous Client returns them: ``_call`` returns what
    ``parse`` makes of the reply (the raw reply without one). On AsyncClient the same methods
    return an awaitable of that (typed so by the generated client/async_surface.pyi), and on
    Batch they queue the call and return None.
    """

    agent_secrets: dict[str, str]
    """The secret of each agent registered through this client (kept in memory only; a Batch
    shares its client's). The agent-side methods fall back to it when not given ``secret=``."""

    def _agent_secret(self, agent_id: str, secret: str | None) -> str:
        """The secret to present for an agent: ``secret``, else the one this client registered
        it with; AgentfnError when there is neither."""
        if secret is not None:
            return secret
        known = self.agent_secrets.get(agent_id)
        if known is None:
            raise AgentfnError(
                f"no secret for agent {agent_id}: pass secret= or register it with this client"
            )
        return known

    @overload
    def _call(
        self,
        name: str,
        positional: Sequence[Any],
        options: Mapping[str, Any] | None = None,
        parse: None = None,
    ) -> Any: ...
    @overload
    def _call(
        self,
        name: str,
        positional: Sequence[Any],
        options: Mapping[str, Any] | None,
        parse: Callable[[Any], T],
    ) -> T: ...
    def _call(
        self,
        name: str,
        positional: Sequence[Any],
        options: Mapping[str, Any] | None = None,
        parse: Parser | None = None,
    ) -> Any:
        """Call one library function (sync: the parsed reply; asyncio: an awaitable of it)."""
        raise NotImplementedError
