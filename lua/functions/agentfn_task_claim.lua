-- agentfn_task_claim: claim the oldest highest-priority ready tasks an agent can run.
--
-- Invariant: only the agent (its secret) claims. A claimed task is running under a new attempt
-- and its token (attempt-<40 hex>, derived from the secret: only the claimer knows it; the task
-- keeps only its sha1, token_sha1), a pending entry
-- of its stream (consumer = the agent: the agent's tasks are its consumer's pending entries) and
-- in the leases set until its lease deadline. Due delayed tasks are promoted first. Order: the agent's direct stream, then
-- its capabilities by priority (high, normal, low); within a priority, across several
-- capabilities, the stream whose next undelivered entry is oldest. When fewer tasks than COUNT
-- are ready (none, or some), the reply says what to block on for the rest: XREAD BLOCK <ms>
-- STREAMS <wait keys> <wait ids> returns as soon as a task lands in any of them after this call
-- (no lost wake-up), or a delayed task becomes the earliest due (the delayed-wake stream), and
-- the earliest delayed task is due at next_due_ms (block at most until then, at least 1 ms);
-- then claim again.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] agent_id: the claiming agent (registered and live)
-- ARGV[2] secret: the secret it registered with
-- OPTION COUNT n: claim at most n tasks, 1 to 50 (default 1)
-- OPTION LEASE_MS ms: the lease of each claimed task (default: each task's timeout_ms)
-- returns: flat array: tasks, [task...], wait, [stream key, newest id, ...], next_due_ms, ms or
--   ''. Each task flat: id, capability, payload, attempt, token (<attempt>-<40 hex>: present it to complete, fail and extend), lease_deadline_ms,
--   priority, workflow, step, inputs (JSON text or ''), timeout_ms, traceparent (as submitted,
--   or the workflow's for a step; '' when none). wait and next_due_ms are
--   filled when tasks has fewer than COUNT (wait: the agent's direct stream, its capabilities'
--   streams of each priority and root:delayed-wake, each with its newest entry id or 0-0;
--   next_due_ms: the earliest due time in the delayed set)
-- errors: BADARG, NOTFOUND, DENIED, LAPSED, VERSION
-- events: task.running, task.queued (promoted delayed tasks)
-- example: FCALL agentfn_task_claim 1 agentfn:{default} researcher-1 5f0c6a1e9b2d4c7f8a3e1d0b9c8a7f6e COUNT 1

-- The options' checkers (built once, not on every call).
local TASK_CLAIM_OPTIONS = {COUNT = OPT.count(LIMITS.claim_count), LEASE_MS = OPT.positive_duration}

local function agentfn_task_claim(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 2, 'agent_id, secret')
  local agent_id = check_id(args[1], 'agent_id')
  local secret = check_secret(args[2])
  local options = parse_options(args, 3, TASK_CLAIM_OPTIONS)
  check_schema(root, namespace)
  local now = now_ms()
  local agent = live_agent(root, agent_id, now, secret)

  return TASK.claim(root, agent_id, agent.capabilities, options.COUNT or 1, options.LEASE_MS, now, secret)
end
