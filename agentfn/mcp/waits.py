"""Wait for a task to finish without polling.

The library appends every transition to the namespace's event stream (``type task.completed
task t7``). The waiter notes the stream's newest entry first, then reads the task, then blocks
with XREAD from that entry and reads the task again only when an event names it: a transition
between the read and the block still wakes it.
"""

from __future__ import annotations

import time

from ..client.api.tasks import TaskInfo
from ..client.client import AsyncClient
from ..client.waiting import EventFollower
from ..constants import TaskState

#: Task states after which nothing more happens to a task (unless it is requeued).
FINAL_TASK_STATES = frozenset(
    state.value
    for state in (TaskState.COMPLETED, TaskState.FAILED, TaskState.DEAD, TaskState.CANCELED)
)


async def wait_task(client: AsyncClient, task_id: str, timeout: float) -> TaskInfo:
    """The task once its state is final, or as it is when ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    events = EventFollower(client.redis, client.namespace)
    await events.start()  # before the read: no later transition is missed
    info = await client.get_task(task_id)
    while info.state not in FINAL_TASK_STATES and (remaining := deadline - time.monotonic()) > 0:
        if any(event.get("task") == task_id for event in await events.next(remaining)):
            info = await client.get_task(task_id)
    return info
