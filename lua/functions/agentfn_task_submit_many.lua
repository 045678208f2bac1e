-- agentfn_task_submit_many: submit many tasks in one call, with options shared by all of them.
--
-- Invariant: each task is created as by agentfn_task_submit (its record, its entry in its
-- stream or its place in the delayed set, its own task.submitted event), and the call is
-- all-or-nothing: every argument is checked before the first write, so a malformed item or
-- option (or TO naming no registered agent) refuses the whole call and nothing is created. The
-- ids are reserved with one HINCRBY and follow each other in the order of the items. The
-- options are agentfn_task_submit's and apply to every task of the call; IDEMPOTENCY_KEY names
-- one task, so it is refused (BADARG): submit such a task with agentfn_task_submit.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] count: how many items follow, 1 to 100; each item is two arguments, capability payload
--   (ARGV[2] and ARGV[3] are the first item's, the next two the second's, and so on)
-- ARGV[2] capability: the capability an agent needs to run that task
-- ARGV[3] payload: that task's input, JSON text (the payloads of one call: at most 64 KiB in all)
-- OPTION PRIORITY level: high, normal or low, for every task (default normal)
-- OPTION DELAY_MS ms: queue the tasks only after this delay on the server clock (default 0)
-- OPTION MAX_ATTEMPTS n: attempts before a task is dead-lettered, 1 to 1000 (default 3)
-- OPTION BACKOFF_MS ms: retry delay after the first failed attempt, doubling with each attempt
--   (default 1000)
-- OPTION BACKOFF_MAX_MS ms: cap on the retry delay (default 60000)
-- OPTION TIMEOUT_MS ms: the lease a claimer gets, renewable with agentfn_task_extend (default 30000)
-- OPTION TO agent_id: route every task to this registered agent only, as agentfn_task_submit's TO
-- OPTION GRACE_MS ms: with TO only: as agentfn_task_submit's GRACE_MS (default 300000)
-- OPTION RETENTION_MS ms: how long each finished task is kept (default 86400000)
-- OPTION TRACEPARENT traceparent: the W3C trace context of the submitter's span, stored with
--   every task, as agentfn_task_submit's TRACEPARENT
-- returns: flat array: the ids of the tasks created (t<number>), in the order of the items (all
--   queued, or all delayed with DELAY_MS > 0)
-- errors: BADARG (also an idempotency key), LIMIT, NOTFOUND (TO names no registered agent), VERSION
-- events: task.submitted for each task, in the order of the items
-- example: FCALL agentfn_task_submit_many 1 agentfn:{default} 2 web_search '{"q":"redis"}' web_search '{"q":"lua"}' PRIORITY high

-- The options' checkers (built once, not on every call): agentfn_task_submit's, but for
-- IDEMPOTENCY_KEY, refused with a word on what to do instead.
local TASK_SUBMIT_MANY_OPTIONS = TASK.submit_checkers(function()
  raise(ERR.BADARG, 'IDEMPOTENCY_KEY names one task: submit such a task with agentfn_task_submit')
end)

-- submit_many_items(args): the items, checked (none written yet): count, then count pairs of
-- capability, payload, then the options. Returns the count and the options.
local function submit_many_items(args)
  local count = check_items(args, 2, LIMITS.submit_count, 'capability, payload')
  local checked, total = {}, 0
  for index = 1, count do
    local base = 2 * index
    local capability = args[base]
    if not checked[capability] then
      checked[check_capability(capability, 'capability of item ' .. index)] = true
    end
    total = check_json_item(args[base + 1], index, 'payload', 'payloads', total)
  end
  return count, TASK.submit_options(args, 2 + 2 * count, TASK_SUBMIT_MANY_OPTIONS)
end

local function agentfn_task_submit_many(keys, args)
  local root, namespace = check_root(keys)
  local count, options = submit_many_items(args)
  check_schema(root, namespace)
  local spec = TASK.submit_spec(root, options)

  local now = now_ms()
  local first = TASK.take_ids(root, count) - count
  local ids = {}
  for index = 1, count do
    local base = 2 * index
    spec.capability, spec.payload = args[base], args[base + 1]
    ids[index] = create_task(root, now, spec, first + index)
  end
  return ids
end
