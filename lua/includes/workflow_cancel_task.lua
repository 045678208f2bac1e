-- WF.cancel_task(root, task_id, now): cancel the task of a step that a workflow cancels (fail_fast
-- or agentfn_wf_cancel) exactly as agentfn_task_cancel does, but without calling back into the
-- workflow hook. It is listed after SETTLE (settle.lua), which it reuses; the other workflow
-- helpers are listed before SETTLE because SETTLE calls the hook, and reach this one through WF
-- at call time.
function WF.cancel_task(root, task_id, now)
  local task = SETTLE.load(root, task_id, false)
  if task.state == STATE.QUEUED or task.state == STATE.DELAYED or task.state == STATE.RUNNING then
    SETTLE.cancel(root, task_id, task, now, false)
  end
end
