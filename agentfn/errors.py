"""Error codes (the one source) and the exception classes the client raises for them.

A function refuses with ``redis.error_reply('<CODE> <message>')``. The codes below are
rendered into the Lua library; the client maps each code to its own exception class.
"""

from __future__ import annotations

from enum import Enum


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
