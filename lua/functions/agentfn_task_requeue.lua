-- agentfn_task_requeue: give a dead (or failed) task a fresh attempt budget and queue it again.
--
-- Invariant: a requeued task is queued with a new stream entry, its dead-letter entry removed,
-- and kept until it finishes again (its expiry is cleared). The attempt counter (the fencing
-- token) continues; max_attempts becomes the current attempt plus the new budget.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] task_id: the task's id
-- OPTION MAX_ATTEMPTS n: the new attempt budget, 1 to 1000 (default 3)
-- returns: flat array: id, state (queued)
-- errors: BADARG, NOTFOUND, STATE (the task is not dead or failed), VERSION
-- events: task.queued
-- example: FCALL agentfn_task_requeue 1 agentfn:{default} t42 MAX_ATTEMPTS 2
local function agentfn_task_requeue(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 1, 'task_id')
  local task_id = check_id(args[1], 'task_id')
  local options = parse_options(args, 2, {MAX_ATTEMPTS = TASK.attempts_option})
  check_schema(root, namespace)
  local task = TASK.load(root, task_id, {'state', 'attempt', 'stream', 'entry', 'idempotency_key'})
  if task.state == '' then
    raise(ERR.NOTFOUND, 'task ' .. task_id .. ' does not exist')
  end
  if task.state ~= STATE.DEAD and task.state ~= STATE.FAILED then
    raise(ERR.STATE, 'task ' .. task_id .. ' is ' .. task.state .. ': only a dead or failed task can be requeued')
  end

  if task.state == STATE.DEAD and task.entry ~= '' then
    redis.call('XDEL', K.dead(root), task.entry)
    if redis.call('XLEN', K.dead(root)) == 0 then
      redis.call('DEL', K.dead(root))
    end
  end
  local key = K.task(root, task_id)
  local now = now_ms()
  redis.call('PERSIST', key)
  if task.idempotency_key ~= '' then
    redis.call('PERSIST', K.idempotency(root, task.idempotency_key))
  end
  redis.call('HSET', key, 'state', STATE.QUEUED, 'due_ms', now, 'finished_ms', '',
    'max_attempts', tonumber(task.attempt) + (options.MAX_ATTEMPTS or DEFAULTS.max_attempts),
    'entry', TASK.enqueue(root, task.stream, task_id))
  emit(root, 'task.queued', {'task', task_id})
  return {'id', task_id, 'state', STATE.QUEUED}
end
