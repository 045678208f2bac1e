"""Blocking helpers written once for Client and AsyncClient: a generator yields steps, a driver runs them.

A helper (``receive``, ``request``, ``wait_workflow``...) is a generator that yields *steps*:
callables that make one Redis call. ``run_sync`` calls each step and sends its value back;
``run_async`` awaits each step's awaitable instead. The generator's return value is the result.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from typing import Any, TypeVar

T = TypeVar("T")

#: One step of a blocking helper: a call returning a value (sync) or an awaitable (asyncio).
Step = Callable[[], Any]


def is_async(redis_client: Any) -> bool:
    """Whether a redis client is an asyncio one (its commands return awaitables)."""
    return inspect.iscoroutinefunction(redis_client.execute_command)


def drive(redis_client: Any, steps: Generator[Step, Any, T]) -> T:
    """Run a helper on whichever kind of client it was given: the result, or an awaitable of it
    on an asyncio client (typed as the synchronous client sees it, like the API methods)."""
    if is_async(redis_client):
        return run_async(steps)  # type: ignore[return-value]  # the awaitable of a T
    return run_sync(steps)


def run_sync(steps: Generator[Step, Any, T]) -> T:
    """Drive a helper on a synchronous client."""
    try:
        step = next(steps)
        while True:
            step = steps.send(step())
    except StopIteration as stop:
        result: T = stop.value
        return result


async def run_async(steps: Generator[Step, Any, T]) -> T:
    """Drive a helper on an asyncio client."""
    try:
        step = next(steps)
        while True:
            step = steps.send(await step())
    except StopIteration as stop:
        result: T = stop.value
        return result
