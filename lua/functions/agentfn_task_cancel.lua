-- agentfn_task_cancel: cancel a task that has not finished.
--
-- Invariant: a canceled task is in no stream, delayed set, lease set or agent set, and expires
-- after its retention. Queued: its undelivered entry is deleted. Delayed: it leaves the delayed
-- set. Running: its delivery and lease end now and cancel_requested is set; the worker learns
-- at its next extend (canceled 1), complete or fail (state canceled), and any result is
-- discarded. A finished task cannot be canceled (STATE).
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] task_id: the task's id
-- returns: flat array: id, state (canceled), was (the state before: queued, delayed or running)
-- errors: BADARG, NOTFOUND, STATE, VERSION
-- events: task.canceled
-- example: FCALL agentfn_task_cancel 1 agentfn:{default} t42
local function agentfn_task_cancel(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 1, 'task_id')
  local task_id = check_id(args[1], 'task_id')
  parse_options(args, 2, {})
  check_schema(root, namespace)
  local task = SETTLE.load(root, task_id, false)
  if task.state == '' then
    raise(ERR.NOTFOUND, 'task ' .. task_id .. ' does not exist')
  end
  if task.state ~= STATE.QUEUED and task.state ~= STATE.DELAYED and task.state ~= STATE.RUNNING then
    raise(ERR.STATE, 'task ' .. task_id .. ' is ' .. task.state .. ': only a queued, delayed or running task can be canceled')
  end

  SETTLE.cancel(root, task_id, task, now_ms(), true)
  return {'id', task_id, 'state', STATE.CANCELED, 'was', task.state}
end
