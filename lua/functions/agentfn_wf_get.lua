-- agentfn_wf_get: a workflow's state and, by default, each of its steps.
--
-- Reads only. A step's attempts count every attempt of every task it ran (a step runs again
-- after agentfn_wf_signal); task_state is the state of its current (or last) task.
--
-- flags: no-writes
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] workflow_id: the workflow's id
-- OPTION STEPS yes|no: include the steps (default yes)
-- OPTION OFFSET n: with STEPS yes, start at the step at this position of the definition order,
--   from 0 (default 0)
-- OPTION COUNT n: with STEPS yes, at most n steps, 1 to the most steps a workflow may have
--   (default all); page a large workflow with OFFSET and COUNT (step_count tells how many)
-- returns: flat array: id, state (running, completed, failed, canceled), policy, created_ms,
--   finished_ms, error (why it failed or was canceled), step_count, remaining (steps not final),
--   completed, failed, skipped, canceled, input_required (steps waiting for a signal),
--   context_version, retention_ms, traceparent (as created with; '' when none), then (with
--   STEPS yes) steps: an array of flat arrays in definition order: id, capability, state
--   (waiting, queued, input-required, completed, failed, skipped, canceled), depends_on
--   (comma-separated), input (JSON), attempts, task (current or last task id), result (JSON),
--   error, prompt (JSON), signal (JSON), queued_ms, started_ms, finished_ms, task_state
-- errors: BADARG, NOTFOUND, VERSION
-- example: FCALL_RO agentfn_wf_get 1 agentfn:{default} w1
local function agentfn_wf_get(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 1, 'workflow_id')
  local workflow_id = check_id(args[1], 'workflow_id')
  local options = parse_options(args, 2, {STEPS = OPT.yes_no,
    OFFSET = function(value, name) return check_int(value, name, 0, LIMITS.workflow_steps) end,
    COUNT = OPT.count(LIMITS.workflow_steps)})
  check_schema(root, namespace)
  local values = redis.call('HMGET', K.workflow(root, workflow_id), unpack(WF.SUMMARY_FIELDS))
  if not values[1] then
    raise(ERR.NOTFOUND, 'workflow ' .. workflow_id .. ' does not exist')
  end

  local reply = flat_reply(WF.SUMMARY_FIELDS, values)
  if options.STEPS ~= false then
    local steps = {}
    local first = options.OFFSET or 0
    local last = first + (options.COUNT or LIMITS.workflow_steps) - 1
    for index, step_id in ipairs(redis.call('LRANGE', K.workflow_steps(root, workflow_id), first, last)) do
      steps[index] = WF.step_reply(root, workflow_id, step_id)
    end
    reply[#reply + 1] = 'steps'
    reply[#reply + 1] = steps
  end
  return reply
end
