-- agentfn_task_extend: renew the lease of a running attempt.
--
-- Invariant: only the current attempt's holder renews its lease (token as
-- agentfn_task_complete: STALE for another attempt, DENIED for a token its claim did not return). The new lease deadline is the server clock plus the lease time. A task canceled while
-- running is not renewed: the reply says canceled 1 and the worker should stop.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] task_id: the task's id
-- ARGV[2] token: the token the claim returned, <attempt>-<40 hex>
-- OPTION LEASE_MS ms: the new lease time (default: the task's timeout_ms)
-- returns: flat array: id, lease_deadline_ms, canceled (1 when the task was canceled: stop
--   working on it; 0 otherwise)
-- errors: BADARG, NOTFOUND, STALE, DENIED, VERSION
-- example: FCALL agentfn_task_extend 1 agentfn:{default} t42 1-9a3c0e5d1b7f2a4c6e8d0b1a3c5e7f9d2b4a6c8e LEASE_MS 60000
local function agentfn_task_extend(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 2, 'task_id, token')
  local task_id = check_id(args[1], 'task_id')
  local attempt, token = TASK.token_arg(args[2])
  local options = parse_options(args, 3, {LEASE_MS = OPT.positive_duration})
  check_schema(root, namespace)
  local task = TASK.load(root, task_id, {'state', 'attempt', 'token_sha1', 'cancel_requested', 'timeout_ms',
    'lease_deadline_ms'})
  if TASK.check_token(task, task_id, attempt, token) then
    return {'id', task_id, 'lease_deadline_ms', task.lease_deadline_ms, 'canceled', 1}
  end

  local deadline = now_ms() + (options.LEASE_MS or tonumber(task.timeout_ms))
  redis.call('HSET', K.task(root, task_id), 'lease_deadline_ms', deadline)
  redis.call('ZADD', K.leases(root), deadline, task_id)
  return {'id', task_id, 'lease_deadline_ms', tostring(deadline), 'canceled', 0}
end
