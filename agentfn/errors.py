"""Error codes (the one source) and the exception classes the client raises for them.

A function refuses with ``redis.error_reply('<CODE> <message>')``. The codes below are
rendered into the Lua library; the client maps each code to its own exception class.
"""

from __future__ import annotations

import re
from enum import Enum

import redis


class ErrorCode(str, Enum):
    """A stable, upper-case error code that starts every refusal from the library."""

    BADARG = "BADARG"
    """An argument is missing, malformed, out of range, or an option is unknown."""
    NOTFOUND = "NOTFOUND"
    """The agent, task, workflow, step or message does not exist."""
    LAPSED = "LAPSED"
    """The agent's liveness lapsed; it must register again."""
    STALE = "STALE"
    """The fencing token is not the task's current attempt: a newer attempt owns it."""
    DENIED = "DENIED"
    """The caller did not prove it is the agent (wrong secret) or the holder of the attempt (wrong
    token)."""
    STATE = "STATE"
    """The object is not in a state that allows this transition."""
    CONFLICT = "CONFLICT"
    """A compare-and-set failed: the expected version is not the current one."""
    CYCLE = "CYCLE"
    """The workflow graph has a cycle; the message names the steps on it."""
    LIMIT = "LIMIT"
    """A documented size limit would be exceeded."""
    VERSION = "VERSION"
    """The namespace's schema version does not match the library: run agentfn migrate."""
    MOVING = "MOVING"
    """Redis Cluster: the namespace's slot is being moved to another node; retry the call."""
    INTERNAL = "INTERNAL"
    """A defect in the library: an unexpected error; the message says whether anything was written."""


class AgentfnError(Exception):
    """Base class of every error agentfn raises."""

    code: str = ""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message


class LibraryError(AgentfnError):
    """A refusal from the Lua library, carrying its code."""

    def __str__(self) -> str:
        return f"{self.code} {self.message}" if self.code else self.message


class BadArgument(LibraryError):
    """BADARG: an argument is missing, malformed or out of range."""

    code = ErrorCode.BADARG.value


class NotFound(LibraryError):
    """NOTFOUND: the object does not exist."""

    code = ErrorCode.NOTFOUND.value


class AgentLapsed(LibraryError):
    """LAPSED: the agent's liveness lapsed; register again."""

    code = ErrorCode.LAPSED.value


class StaleToken(LibraryError):
    """STALE: a newer attempt owns the task."""

    code = ErrorCode.STALE.value


class Denied(LibraryError):
    """DENIED: the caller did not prove it is the agent (wrong secret) or the holder of the
    attempt (wrong token)."""

    code = ErrorCode.DENIED.value


class InvalidState(LibraryError):
    """STATE: the transition is not allowed in the object's current state."""

    code = ErrorCode.STATE.value


class Conflict(LibraryError):
    """CONFLICT: the expected version is stale."""

    code = ErrorCode.CONFLICT.value


class CycleError(LibraryError):
    """CYCLE: the workflow graph has a cycle."""

    code = ErrorCode.CYCLE.value


class LimitExceeded(LibraryError):
    """LIMIT: a documented size limit would be exceeded."""

    code = ErrorCode.LIMIT.value


class SchemaMismatch(LibraryError):
    """VERSION: the namespace's schema does not match the deployed library."""

    code = ErrorCode.VERSION.value


class InternalDefect(LibraryError):
    """INTERNAL: the library hit an unexpected error (a defect; please report it)."""

    code = ErrorCode.INTERNAL.value


class LibraryNotReady(AgentfnError):
    """The deployed library is missing or incompatible; the message names the command to run."""


class NamespaceMoving(LibraryError):
    """MOVING: the namespace's cluster slot was still being moved when the call's retries ran
    out (the client retries MOVING, ASK and TRYAGAIN within a bound first); nothing was written."""

    code = ErrorCode.MOVING.value


class NotReplicated(AgentfnError):
    """A write ran on the primary but fewer replicas than asked acknowledged it in time (the
    durability option, ``wait_replicas``): it may be lost if the primary fails now."""

    code = "NOTREPLICATED"
    reply: object = None
    """The write's reply (it ran): the client sets ``result``, the parsed reply, from it."""
    result: object = None

    def __str__(self) -> str:
        return f"{self.code} {self.message}"


class PermissionDenied(AgentfnError, redis.exceptions.NoPermissionError):
    """NOPERM: the Redis user (an ACL user) may not run a command, or use a key or channel, that
    the call needs. The message names what was refused and points at ``agentfn acl``, which
    prints each role's rules. Also a redis-py NoPermissionError, as the refusal was before."""

    code = "NOPERM"

    def __str__(self) -> str:
        return f"{self.code} {self.message}"


#: How Redis words an ACL refusal (redis-py drops the code NOPERM from the reply): of a command,
#: of a key or channel, and of a command a function runs (Redis 7.0; from 7.2 the function's
#: refusal reads "ACL failure in script: this user has no permissions to run the 'x' command").
_ACL_REFUSAL = re.compile(
    r"no permissions to (?:run the '(?P<command>[^']+)' command|access one of the (?P<what>keys|"
    r"channels))|(?P<script>the user executing the script can't run this command)",
    re.IGNORECASE,
)


def permission_denied(
    reply_message: str,
    user: str | None,
    function: str | None = None,
    namespace: str | None = None,
) -> PermissionDenied | None:
    """The PermissionDenied for an ACL refusal of ``user`` (None: the default user), if
    ``reply_message`` is one: calling ``function`` of the library on ``namespace`` when known."""
    match = _ACL_REFUSAL.search(reply_message)
    if match is None:
        return None
    if match["command"]:
        refused = f"may not run {match['command'].replace('|', ' ').upper()}"
    elif match["what"] == "keys":
        where = f"namespace {namespace!r}" if namespace else "the command"
        refused = f"may not use the keys of {where}"
    elif match["what"]:
        refused = "may not use the Pub/Sub channel of the command"
    else:
        refused = f"may not run one of the commands {function or 'the function'} runs"
    if function and not match["script"]:
        refused += f" (calling {function})"
    partly = " (the call may be partly applied)" if "after a write" in reply_message else ""
    return PermissionDenied(
        f"Redis user {user or 'default'!r} {refused}: `agentfn acl` prints the ACL rules of "
        f"each role (admin, orchestrator, agent, observer); give this user the one it needs{partly}"
    )


class DowngradeRefused(AgentfnError):
    """deploy would replace a newer library with an older one (use force to allow it)."""


class MigrationError(AgentfnError):
    """A migration could not be applied."""


#: The exception class raised for each library error code.
EXCEPTION_FOR_CODE: dict[str, type[LibraryError]] = {
    cls.code: cls
    for cls in (
        BadArgument,
        NotFound,
        AgentLapsed,
        StaleToken,
        Denied,
        InvalidState,
        Conflict,
        CycleError,
        LimitExceeded,
        SchemaMismatch,
        NamespaceMoving,
        InternalDefect,
    )
}


def library_error(reply_message: str) -> LibraryError | None:
    """Turn an error reply such as ``'NOTFOUND agent a1'`` into its exception, if it is ours."""
    code, _, message = reply_message.partition(" ")
    cls = EXCEPTION_FOR_CODE.get(code)
    if cls is None:
        return None
    return cls(message)


def is_missing_function(error: Exception) -> bool:
    """Whether Redis refused an FCALL because no loaded library has the function (not ours)."""
    return "function not found" in str(error).lower()
