-- agentfn_wf_signal: give a step that asked for input its input, and run the step again.
--
-- Invariant: a step waits in input-required (durably: it is only data) from the moment its
-- handler completed its task with INPUT_REQUIRED until this call; then it becomes queued with a
-- new task whose payload is the step's input again and whose inputs are the dependency results
-- plus "_signal": the value given here.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] workflow_id: the workflow's id
-- ARGV[2] step_id: the step waiting for input
-- ARGV[3] value: the input, any JSON value
-- returns: flat array: workflow, step, state (queued), task (the new task's id)
-- errors: BADARG, LIMIT, NOTFOUND, STATE (the workflow is not running or the step is not waiting
--   for input), VERSION
-- events: step.signaled, task.submitted
-- example: FCALL agentfn_wf_signal 1 agentfn:{default} w1 review '{"approved":true}'
local function agentfn_wf_signal(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 3, 'workflow_id, step_id, value')
  local workflow_id = check_id(args[1], 'workflow_id')
  local step_id = check_id(args[2], 'step_id')
  local value = args[3]
  check_json(value, 'value')
  parse_options(args, 4, {})
  check_schema(root, namespace)
  local workflow = WF.existing(root, workflow_id)
  if workflow.state ~= WF_STATE.RUNNING then
    raise(ERR.STATE, 'workflow ' .. workflow_id .. ' is ' .. workflow.state)
  end
  local step_key = K.workflow_step(root, workflow_id, step_id)
  local state = redis.call('HGET', step_key, 'state')
  if not state then
    raise(ERR.NOTFOUND, 'workflow ' .. workflow_id .. ' has no step ' .. step_id)
  end
  if state ~= STEP_STATE.INPUT_REQUIRED then
    raise(ERR.STATE, 'step ' .. step_id .. ' is ' .. state .. ', not waiting for input')
  end

  local now = now_ms()
  redis.call('HSET', step_key, 'signal', value)
  redis.call('HINCRBY', K.workflow(root, workflow_id), 'input_required', -1)
  WF.notify(root, workflow_id, 'step.signaled', step_id)
  local task_id = WF.enqueue(root, workflow, WF.load_step(root, workflow_id, step_id), now, value)
  return {'workflow', workflow_id, 'step', step_id, 'state', STEP_STATE.QUEUED, 'task', task_id}
end
