-- agentfn_task_get: a task's record.
--
-- Reads only. Every field of the task hash, in a fixed order, '' for fields not set.
--
-- flags: no-writes
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] task_id: the task's id
-- returns: flat array: id, capability, payload, priority, state, attempt, max_attempts,
--   backoff_ms, backoff_max_ms, timeout_ms, created_ms, due_ms, started_ms, finished_ms, agent,
--   stream, entry (the stream entry while queued or running; the dead-letter entry while dead),
--   lease_deadline_ms, result, error (the last one), errors (JSON array of {attempt, error,
--   agent, at_ms}), to, idempotency_key, workflow, step, inputs, prompt, retention_ms,
--   cancel_requested (1 when canceled while running), traceparent (the W3C trace context it was
--   submitted with, or its workflow's)
-- errors: BADARG, NOTFOUND, VERSION
-- example: FCALL_RO agentfn_task_get 1 agentfn:{default} t42
local function agentfn_task_get(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 1, 'task_id')
  local task_id = check_id(args[1], 'task_id')
  parse_options(args, 2, {})
  check_schema(root, namespace)
  local values = redis.call('HMGET', K.task(root, task_id), unpack(TASK.FIELDS))
  if not values[5] then
    raise(ERR.NOTFOUND, 'task ' .. task_id .. ' does not exist')
  end
  return flat_reply(TASK.FIELDS, values)
end
