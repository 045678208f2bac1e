"""Wait for a task to finish without polling.

The library publishes ``<event type> <subject>`` on the namespace's notification channel for
every transition (``task.completed t7``). The waiter subscribes first, then reads the task, then
blocks on the channel and reads the task again only when a message names it: a transition
between the read and the block still wakes it.
"""

from __future__ import annotations

import time

from .. import keys
from ..client.api.tasks import TaskInfo
from ..client.client import AsyncClient
from ..constants import TaskState

#: Task states after which nothing more happens to a task (unless it is requeued).
FINAL_TASK_STATES = frozenset(
    state.value
    for state in (TaskState.COMPLETED, TaskState.FAILED, TaskState.DEAD, TaskState.CANCELED)
)


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


async def wait_task(client: AsyncClient, task_id: str, timeout: float) -> TaskInfo:
    """The task once its state is final, or as it is when ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    pubsub = client.redis.pubsub()
    try:
        await pubsub.subscribe(keys.notify_channel(client.namespace, "events"))
        # The server confirms the subscription before the read: no later transition is missed.
        while (remaining := deadline - time.monotonic()) > 0:
            message = await pubsub.get_message(timeout=remaining)
            if message is not None and _text(message["type"]) == "subscribe":
                break
        info = await client.get_task(task_id)
        while (
            info.state not in FINAL_TASK_STATES and (remaining := deadline - time.monotonic()) > 0
        ):
            message = await pubsub.get_message(timeout=remaining)
            if (
                message is not None
                and _text(message["type"]) == "message"
                and _text(message["data"]).partition(" ")[2] == task_id
            ):
                info = await client.get_task(task_id)
        return info
    finally:
        await pubsub.aclose()
