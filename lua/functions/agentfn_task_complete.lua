-- agentfn_task_complete: finish a running attempt with its result (and claim the next tasks).
--
-- Invariant: only the current attempt's holder completes a task: the token's attempt must be
-- the task's (else STALE), the token the one its claim returned (else DENIED), and the task
-- running under it (else STALE); nothing changes on a refusal. With NEXT, the tasks claimed
-- get tokens derived from the token presented. Completing acknowledges the
-- stream entry (agentfn_reap trims it), drops the lease, stores the result and expires the task
-- after its retention. If the task was canceled while running, the reply says canceled and the result is
-- discarded. With INPUT_REQUIRED (workflow tasks only) the attempt ends without a result and the
-- workflow step waits for input. With NEXT n the agent claims its next tasks in the same call.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] task_id: the task's id
-- ARGV[2] token: the token the claim returned, <attempt>-<40 hex>
-- ARGV[3] result: the task's result, JSON text (at most 64 KiB); still required with
--   INPUT_REQUIRED, where it is ignored (pass null)
-- OPTION NEXT n: then claim up to n tasks for the same agent, 0 to 50 (default 0)
-- OPTION LEASE_MS ms: the lease of each task NEXT claims, as agentfn_task_claim's LEASE_MS
--   (default: each task's timeout_ms; ignored without NEXT)
-- OPTION INPUT_REQUIRED prompt: JSON text: the step needs input; the result is not stored, the
--   task's state becomes completed with its prompt field set, and the workflow step waits in
--   input-required until agentfn_wf_signal
-- returns: flat array: id, state (completed, or canceled), and with NEXT n > 0: next, [the
--   agentfn_task_claim reply]
-- errors: BADARG, LIMIT, NOTFOUND, STALE, DENIED, LAPSED (claiming next for an agent that lapsed), VERSION
-- events: task.completed (or none for a canceled task), then as agentfn_task_claim
-- example: FCALL agentfn_task_complete 1 agentfn:{default} t42 1-9a3c0e5d1b7f2a4c6e8d0b1a3c5e7f9d2b4a6c8e '{"answer":42}' NEXT 1 LEASE_MS 60000

-- The options' checkers (built once, not on every call).
local TASK_COMPLETE_OPTIONS = {NEXT = TASK.next_option, INPUT_REQUIRED = OPT.json, LEASE_MS = OPT.positive_duration}

local function check_result(value)
  check_json(value, 'result')
end

local function agentfn_task_complete(keys, args)
  local root, namespace = check_root(keys)
  local task_id, task, canceled, options = SETTLE.open_attempt(root, namespace, args, 'task_id, token, result',
    check_result, TASK_COMPLETE_OPTIONS, false)
  if options.INPUT_REQUIRED and task.workflow == '' then
    raise(ERR.BADARG, 'INPUT_REQUIRED is only for workflow tasks; ' .. task_id .. ' has no workflow')
  end
  local now = now_ms()
  local agent = SETTLE.next_agent(root, task, options, now)

  local state = STATE.CANCELED
  if not canceled then
    state = STATE.COMPLETED
    TASK.unlink(root, task_id, task)
    if options.INPUT_REQUIRED then
      SETTLE.finish(root, task_id, task, state, 'input-required', now, {'entry', '', 'prompt', options.INPUT_REQUIRED})
    else
      SETTLE.finish(root, task_id, task, state, 'completed', now, {'entry', '', 'result', args[3]})
    end
  end
  return SETTLE.reply(root, task, agent, options, now, {'id', task_id, 'state', state})
end
