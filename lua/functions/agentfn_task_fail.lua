-- agentfn_task_fail: end a running attempt with an error: retry it, dead-letter it, or fail it.
--
-- Invariant: only the current attempt's holder fails a task (token as agentfn_task_complete:
-- STALE or DENIED).
-- The error joins the task's history. With RETRY yes and attempts left, the task is queued
-- again after the backoff (backoff_ms * 2^(attempt-1), at most backoff_max_ms, on the server
-- clock; state delayed, or queued when the delay is 0). Out of attempts it is dead: an entry in
-- the dead-letter stream root:dead carries task, capability, attempts, error and errors (JSON),
-- and agentfn_task_requeue can bring it back. RETRY no fails it for good (not dead-lettered).
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] task_id: the task's id
-- ARGV[2] token: the token the claim returned, <attempt>-<40 hex>
-- ARGV[3] error: what went wrong, UTF-8 text of at most 8192 bytes
-- OPTION RETRY yes|no: whether the task may be retried (default yes)
-- OPTION NEXT n: then claim up to n tasks for the same agent, 0 to 50 (default 0)
-- OPTION LEASE_MS ms: the lease of each task NEXT claims, as agentfn_task_claim's LEASE_MS
--   (default: each task's timeout_ms; ignored without NEXT)
-- returns: flat array: id, state (delayed, queued, failed, dead, or canceled when it was
--   canceled while running), due_ms (when it will be ready again; '' unless delayed or queued),
--   attempt (the attempt that failed), max_attempts (the task's attempts in all),
--   and with NEXT n > 0: next, [the agentfn_task_claim reply]
-- errors: BADARG, LIMIT, NOTFOUND, STALE, DENIED, LAPSED (claiming next for an agent that lapsed), VERSION
-- events: task.delayed, task.queued, task.failed or task.dead, then as agentfn_task_claim
-- example: FCALL agentfn_task_fail 1 agentfn:{default} t42 1-9a3c0e5d1b7f2a4c6e8d0b1a3c5e7f9d2b4a6c8e 'rate limited' RETRY yes

-- The options' checkers (built once, not on every call).
local TASK_FAIL_OPTIONS = {RETRY = OPT.yes_no, NEXT = TASK.next_option, LEASE_MS = OPT.positive_duration}

local function check_error_text(error_text)
  check_text(error_text, 'error', LIMITS.error_bytes)
end

local function agentfn_task_fail(keys, args)
  local root, namespace = check_root(keys)
  local task_id, task, canceled, options = SETTLE.open_attempt(root, namespace, args, 'task_id, token, error',
    check_error_text, TASK_FAIL_OPTIONS, true)
  local now = now_ms()
  local agent = SETTLE.next_agent(root, task, options, now)

  local state, due_ms = STATE.CANCELED, ''
  if not canceled then
    TASK.unlink(root, task_id, task)
    state, due_ms = SETTLE.after_failure(root, task_id, task, args[3], now, options.RETRY ~= false, true)
  end
  return SETTLE.reply(root, task, agent, options, now, {'id', task_id, 'state', state, 'due_ms', tostring(due_ms),
    'attempt', task.attempt, 'max_attempts', task.max_attempts})
end
