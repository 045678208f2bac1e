"""Blocking helpers written once for Client and AsyncClient: a generator yields steps, a driver runs them.

A helper (``receive``, ``request``, ``wait_workflow``...) is a generator that yields *steps*:
callables that make one Redis call. ``run_sync`` calls each step and sends its value back;
``run_async`` awaits each step's awaitable instead. The generator's return value is the result.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

#: One step of a blocking helper: a call returning a value (sync) or an awaitable (asyncio).
Step = Callable[[], Any]


def run_sync(steps: Generator[Step, Any, Any]) -> Any:
    """Drive a helper on a synchronous client."""
    try:
        step = next(steps)
        while True:
            step = steps.send(step())
    except StopIteration as stop:
        return stop.value


async def run_async(steps: Generator[Step, Any, Any]) -> Any:
    """Drive a helper on an asyncio client."""
    try:
        step = next(steps)
        while True:
            step = steps.send(await step())
    except StopIteration as stop:
        return stop.value
