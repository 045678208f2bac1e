-- agentfn_task_submit: submit a task for any agent with a capability (or for one agent).
--
-- Invariant: a task exists exactly once, with its record and either an undelivered entry in its
-- stream (state queued) or a member of the delayed set (state delayed). The stream is one per
-- capability and priority, root:queue:<capability>:<priority>, or the agent's direct stream
-- root:direct:<agent> with TO; a new stream is created with the consumer group. With an
-- idempotency key, a second submit while the first task is retained returns that task and
-- creates nothing (the key expires with the task).
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] capability: the capability an agent needs to run the task
-- ARGV[2] payload: the task's input, JSON text (at most 64 KiB)
-- OPTION PRIORITY level: high, normal or low (default normal)
-- OPTION DELAY_MS ms: queue the task only after this delay on the server clock (default 0)
-- OPTION MAX_ATTEMPTS n: attempts before the task is dead-lettered, 1 to 1000 (default 3)
-- OPTION BACKOFF_MS ms: retry delay after the first failed attempt, doubling with each attempt
--   (backoff_ms * 2^(attempt-1)); 0 retries at once (default 1000)
-- OPTION BACKOFF_MAX_MS ms: cap on the retry delay (default 60000)
-- OPTION TIMEOUT_MS ms: the lease a claimer gets, renewable with agentfn_task_extend (default 30000)
-- OPTION IDEMPOTENCY_KEY key: an id; while the task submitted with it is retained, the same key
--   returns that task instead of creating one
-- OPTION TO agent_id: route the task to this registered agent only (its direct stream); a
--   lapsed agent whose record is kept is accepted (the task waits for it, see GRACE_MS)
-- OPTION GRACE_MS ms: with TO only: how long the task, queued, waits for its agent once the
--   agent is gone (deregistered, lapsed, or not live at submit) before agentfn_reap
--   dead-letters it with error 'agent gone' (default 300000; counted from when the agent went
--   or the task was queued, whichever is later)
-- OPTION RETENTION_MS ms: how long the finished task is kept (default 86400000)
-- OPTION TRACEPARENT traceparent: the W3C trace context of the submitter's span,
--   00-<32 hex trace id>-<16 hex span id>-<2 hex flags> (lower case, ids not all zeros); stored
--   with the task and returned by every claim of it, so that each attempt's span is its child
-- returns: flat array: id (t<number>), state (queued or delayed; the existing task's state when
--   an idempotency key matched), created (1, or 0 when an idempotency key matched)
-- errors: BADARG, LIMIT, NOTFOUND (TO names no registered agent), VERSION
-- events: task.submitted
-- example: FCALL agentfn_task_submit 1 agentfn:{default} web_search '{"q":"redis"}' PRIORITY high MAX_ATTEMPTS 5

-- The options' checkers (built once, not on every call).
local TASK_SUBMIT_OPTIONS = TASK.submit_checkers(OPT.id)

local function agentfn_task_submit(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 2, 'capability, payload')
  local capability = check_capability(args[1], 'capability')
  check_json(args[2], 'payload')
  local options = TASK.submit_options(args, 3, TASK_SUBMIT_OPTIONS)
  check_schema(root, namespace)
  local spec = TASK.submit_spec(root, options)
  if options.IDEMPOTENCY_KEY then
    local existing, state = TASK.idempotent(root, options.IDEMPOTENCY_KEY)
    if existing then
      return {'id', existing, 'state', state, 'created', 0}
    end
  end

  spec.capability, spec.payload = capability, args[2]
  local task_id, state = create_task(root, now_ms(), spec)
  return {'id', task_id, 'state', state, 'created', 1}
end
