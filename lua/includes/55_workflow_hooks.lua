-- workflow_on_task_finished(root, task, outcome, now): advance the workflow a task belongs to,
-- once the task reaches a terminal outcome ('completed', 'failed', 'dead', 'canceled' or
-- 'input-required'). `task` is a table of the task hash's fields. The workflow transitions
-- define what advancing means.
local function workflow_on_task_finished(root, task, outcome, now)
end
