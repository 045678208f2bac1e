-- agentfn_wf_create: create a workflow (a graph of steps) and enqueue its root steps.
--
-- Invariant: the whole definition is checked before anything is written (shape, ids,
-- capabilities, duplicate steps, unknown dependencies, size, cycles), so a refused graph leaves
-- no trace. Each step becomes a task once every step it depends on has completed; the steps with
-- no dependencies are enqueued in this call. The definition is a JSON object: {"steps": [{"id",
-- "capability", "input" (any JSON, the task's payload; default null), "depends_on" (step ids), "max_attempts",
-- "backoff_ms", "timeout_ms", "priority"}, ...], "policy": "fail_fast" (default) or "continue", "id" (optional
-- workflow id), "chain" (true: each step depends on the one before it; depends_on not allowed)}.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] definition: the workflow definition, a JSON object (see above)
-- OPTION RETENTION_MS ms: how long the finished workflow and its tasks are kept (default 24 h)
-- OPTION CONTEXT json: the initial shared context document, a JSON object, at most 64 KiB
--   (default {})
-- OPTION TRACEPARENT traceparent: the W3C trace context of the creator's span (as
--   agentfn_task_submit's), kept in the workflow record and given to every step's task
-- returns: flat array: id (the workflow id), state (running), steps (how many), queued (root
--   steps enqueued now)
-- errors: BADARG, CYCLE, LIMIT, STATE (the chosen id exists), VERSION
-- events: workflow.created, then task.submitted for each root step
-- example: FCALL agentfn_wf_create 1 agentfn:{default} '{"steps":[{"id":"search","capability":"web_search","input":{"q":"redis"}},{"id":"sum","capability":"summarize","depends_on":["search"]}]}'
local function agentfn_wf_create(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 1, 'definition')
  local options = parse_options(args, 2, {RETENTION_MS = OPT.positive_duration, CONTEXT = OPT.object,
    TRACEPARENT = OPT.traceparent})
  if options.CONTEXT and #options.CONTEXT > LIMITS.context_bytes then
    raise(ERR.LIMIT, 'CONTEXT is larger than ' .. LIMITS.context_bytes .. ' bytes')
  end
  local definition = WF.parse_definition(args[1])
  check_schema(root, namespace)
  if definition.id and redis.call('EXISTS', K.workflow(root, definition.id)) == 1 then
    raise(ERR.STATE, 'workflow ' .. definition.id .. ' already exists')
  end

  local now = now_ms()
  local steps = definition.steps
  local workflow = {id = definition.id or WF.new_id(root), policy = definition.policy,
    retention_ms = options.RETENTION_MS or DEFAULTS.retention_ms, traceparent = options.TRACEPARENT}
  redis.call('HSET', K.workflow(root, workflow.id), 'id', workflow.id, 'state', WF_STATE.RUNNING,
    'policy', workflow.policy, 'created_ms', now, 'step_count', #steps, 'remaining', #steps, 'completed', 0,
    'failed', 0, 'skipped', 0, 'canceled', 0, 'input_required', 0, 'retention_ms', workflow.retention_ms,
    'context', options.CONTEXT or '{}', 'context_version', 0)
  if workflow.traceparent then
    redis.call('HSET', K.workflow(root, workflow.id), 'traceparent', workflow.traceparent)
  end
  redis.call('ZADD', K.workflows(root, WF_STATE.RUNNING), now, workflow.id)
  WF.store_steps(root, workflow.id, steps)
  WF.notify(root, workflow.id, 'workflow.created', nil, {'steps', #steps, 'policy', workflow.policy})
  local queued = 0
  for _, step in ipairs(steps) do
    if #step.depends_on == 0 then
      WF.enqueue(root, workflow, step, now)
      queued = queued + 1
    end
  end
  return {'id', workflow.id, 'state', WF_STATE.RUNNING, 'steps', #steps, 'queued', queued}
end
