-- Workflows advance inside the library. WF groups every workflow helper (here: moving steps and
-- workflows; workflow_json: JSON spans; workflow_definition: definitions and replies;
-- workflow_cancel_task: canceling a step's task), so
-- that a function needs one upvalue for all of them. The helpers run only when a function is
-- called, by which time all of those files have filled the table.
--
-- Keys of workflow <id>: the record `wf:<id>` (hash: state, policy, counters, shared context),
-- `wf:<id>:steps` (list: step ids in definition order), `wf:<id>:step:<step>` (hash: the step's
-- definition, state, current task, result) and `wf:<id>:unmet` (hash: step -> how many of its
-- dependencies have not completed yet).
local WF = {}

-- Failure policies (rendered from WorkflowPolicy in agentfn/constants.py).
WF.POLICY = WF_POLICY

-- Step states from which a step can still move; the others are final.
WF.OPEN = {[STEP_STATE.WAITING] = true, [STEP_STATE.QUEUED] = true, [STEP_STATE.INPUT_REQUIRED] = true}

-- WF.notify(root, workflow_id, kind, step_id, extra): record a workflow transition: an event
-- (workflow, step when given, then the flat `extra` fields) and the message `<kind>` or
-- `<kind> <step_id>` on the workflow's channel, which waiters subscribe to.
function WF.notify(root, workflow_id, kind, step_id, extra)
  local fields = {'workflow', workflow_id}
  if step_id then
    fields[3], fields[4] = 'step', step_id
  end
  for _, value in ipairs(extra or {}) do
    fields[#fields + 1] = value
  end
  emit(root, kind, fields)
  redis.call('PUBLISH', K.channel(root, 'wf:' .. workflow_id), step_id and (kind .. ' ' .. step_id) or kind)
end

-- WF.call_chunked(command, key, values): `command key v1 v2 ...` in slices of 1000 values (an
-- even number, so field/value pairs stay together), to stay within Lua's stack for unpack.
function WF.call_chunked(command, key, values)
  for first = 1, #values, 1000 do
    redis.call(command, key, unpack(values, first, math.min(first + 999, #values)))
  end
end

-- WF.load_step(root, workflow_id, step_id): what enqueueing a stored step needs, as a table.
function WF.load_step(root, workflow_id, step_id)
  local values = redis.call('HMGET', K.workflow_step(root, workflow_id, step_id), 'capability', 'input',
    'depends_on', 'max_attempts', 'backoff_ms', 'timeout_ms', 'priority')
  return {id = step_id, capability = values[1], input = values[2], depends_on = split_csv(values[3] or ''),
    max_attempts = tonumber(values[4]), backoff_ms = tonumber(values[5]), timeout_ms = tonumber(values[6]),
    priority = values[7] or nil}
end

-- WF.inputs(root, workflow_id, depends_on, signal, known): a task's `inputs` (JSON text): the
-- result of each dependency under its step id, plus `_signal` (the value given to
-- agentfn_wf_signal) when the step runs again after asking for input; nil for a root step that
-- was not signaled. Results are stored JSON text, joined as they are (never decoded and encoded
-- again); `known` (optional) holds the one just completed: {step = id, result = text}.
function WF.inputs(root, workflow_id, depends_on, signal, known)
  if #depends_on == 0 and not signal then
    return nil
  end
  local parts = {}
  for index, dependency in ipairs(depends_on) do
    local result = known and known.step == dependency and known.result
      or redis.call('HGET', K.workflow_step(root, workflow_id, dependency), 'result')
    parts[index] = '"' .. dependency .. '":' .. (result or 'null')
  end
  if signal then
    parts[#parts + 1] = '"_signal":' .. signal
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- WF.enqueue(root, workflow, step, now, signal, known): submit a task for a step whose
-- dependencies have all completed; the step becomes queued with that task. `workflow` has id,
-- retention_ms and traceparent (the task's; false or nil when none); `step` is a parsed or
-- loaded step (WF.load_step); signal and known as WF.inputs. Returns the task id.
function WF.enqueue(root, workflow, step, now, signal, known)
  local task_id = create_task(root, now, {
    capability = step.capability, payload = step.input, priority = step.priority, delay_ms = 0,
    max_attempts = step.max_attempts, backoff_ms = step.backoff_ms, timeout_ms = step.timeout_ms,
    retention_ms = workflow.retention_ms, traceparent = workflow.traceparent,
    workflow = workflow.id, step = step.id, inputs = WF.inputs(root, workflow.id, step.depends_on, signal, known),
  })
  redis.call('HSET', K.workflow_step(root, workflow.id, step.id), 'state', STEP_STATE.QUEUED, 'task', task_id,
    'queued_ms', now)
  return task_id
end

-- WF.finish(root, workflow, state, now, extra): the workflow reaches a final state: record it,
-- let all of its keys expire after its retention time, and tell the waiters. It moves from the
-- running index to its final state's (K.workflows, scored by creation time), and its place in
-- K.workflow_expiry ('<state> <id>' scored by when its keys expire) lets agentfn_reap drop it
-- from that index once the keys are gone.
function WF.finish(root, workflow, state, now, extra)
  local id = workflow.id
  local created_ms = redis.call('HGET', K.workflow(root, id), 'created_ms') or now
  redis.call('HSET', K.workflow(root, id), 'state', state, 'finished_ms', now)
  local retention_ms = workflow.retention_ms
  redis.call('ZREM', K.workflows(root, WF_STATE.RUNNING), id)
  redis.call('ZADD', K.workflows(root, state), created_ms, id)
  local expires_ms = now + retention_ms
  redis.call('ZADD', K.workflow_expiry(root), expires_ms, state .. ' ' .. id)
  for _, key in ipairs({K.workflow(root, id), K.workflow_steps(root, id), K.workflow_unmet(root, id)}) do
    redis.call('PEXPIREAT', key, expires_ms)
  end
  for _, step_id in ipairs(redis.call('LRANGE', K.workflow_steps(root, id), 0, -1)) do
    redis.call('PEXPIREAT', K.workflow_step(root, id, step_id), expires_ms)
  end
  WF.notify(root, id, 'workflow.' .. state, nil, extra)
end

-- WF.settle(root, workflow, now): every step reached a final state: the workflow completed when
-- all of them completed, else it failed (continue policy: something failed or was skipped).
function WF.settle(root, workflow, now)
  local counts = redis.call('HMGET', K.workflow(root, workflow.id), 'completed', 'step_count')
  WF.finish(root, workflow, counts[1] == counts[2] and WF_STATE.COMPLETED or WF_STATE.FAILED, now)
end

-- WF.close(root, workflow, state, reason, now): end a running workflow early (fail_fast or a
-- cancel): every step that can still move is canceled, and so is the task of each queued step.
-- The workflow leaves the running state first, so the task hook ignores those cancellations.
-- Returns how many steps were canceled.
function WF.close(root, workflow, state, reason, now)
  local workflow_key = K.workflow(root, workflow.id)
  redis.call('HSET', workflow_key, 'state', state, 'error', reason)
  local canceled = 0
  for _, step_id in ipairs(redis.call('LRANGE', K.workflow_steps(root, workflow.id), 0, -1)) do
    local step_key = K.workflow_step(root, workflow.id, step_id)
    local step = redis.call('HMGET', step_key, 'state', 'task')
    if WF.OPEN[step[1]] then
      if step[1] == STEP_STATE.QUEUED then
        WF.cancel_task(root, step[2], now)
      end
      redis.call('HSET', step_key, 'state', STEP_STATE.CANCELED, 'error', reason, 'finished_ms', now)
      canceled = canceled + 1
    end
  end
  redis.call('HINCRBY', workflow_key, 'canceled', canceled)
  redis.call('HSET', workflow_key, 'remaining', 0, 'input_required', 0)
  WF.finish(root, workflow, state, now, {'canceled_steps', canceled, 'error', reason})
  return canceled
end

-- WF.skip_dependents(root, workflow_id, step_id, reason, now): under the continue policy, every
-- step that depends on the failed step, directly or not, is skipped. Only waiting steps can
-- depend on a step that did not complete. Returns how many steps were skipped.
function WF.skip_dependents(root, workflow_id, step_id, reason, now)
  local pending, head, skipped = {step_id}, 1, 0
  while head <= #pending do
    local dependents = redis.call('HGET', K.workflow_step(root, workflow_id, pending[head]), 'dependents')
    head = head + 1
    for _, dependent in ipairs(split_csv(dependents or '')) do
      local dependent_key = K.workflow_step(root, workflow_id, dependent)
      if redis.call('HGET', dependent_key, 'state') == STEP_STATE.WAITING then
        redis.call('HSET', dependent_key, 'state', STEP_STATE.SKIPPED, 'error', reason, 'finished_ms', now)
        skipped = skipped + 1
        pending[#pending + 1] = dependent
      end
    end
  end
  return skipped
end

-- WF.step_completed(root, workflow, step_id, result, dependents, now, fields): store the result
-- (and the flat `fields`) and enqueue every dependent whose dependencies have now all completed.
function WF.step_completed(root, workflow, step_id, result, dependents, now, fields)
  local id, workflow_key = workflow.id, K.workflow(root, workflow.id)
  result = result or 'null'
  redis.call('HSET', K.workflow_step(root, id, step_id), 'state', STEP_STATE.COMPLETED, 'result', result,
    'finished_ms', now, unpack(fields))
  redis.call('HINCRBY', workflow_key, 'completed', 1)
  local remaining = redis.call('HINCRBY', workflow_key, 'remaining', -1)
  WF.notify(root, id, 'step.completed', step_id)
  -- A step completes once (the hook moves only a queued step with its current task), so it
  -- decrements each dependent's unmet count once: a count reaches 0 exactly once, when the last
  -- dependency completes, and never when a dependency failed (that one never decrements it).
  local unmet_key = K.workflow_unmet(root, id)
  for _, dependent in ipairs(dependents) do
    if redis.call('HINCRBY', unmet_key, dependent, -1) == 0 then
      WF.enqueue(root, workflow, WF.load_step(root, id, dependent), now, nil, {step = step_id, result = result})
    end
  end
  if remaining == 0 then
    WF.settle(root, workflow, now)
  end
end

-- WF.step_failed(root, workflow, step_id, outcome, error_text, now, fields): the step's task
-- failed for good ('failed', 'dead') or was canceled. fail_fast: the workflow fails and its other
-- steps are canceled. continue: the step's dependents are skipped and the other branches go on.
function WF.step_failed(root, workflow, step_id, outcome, error_text, now, fields)
  local id, workflow_key = workflow.id, K.workflow(root, workflow.id)
  local state = outcome == 'canceled' and STEP_STATE.CANCELED or STEP_STATE.FAILED
  local reason = (error_text and error_text ~= '') and error_text or ('task ' .. outcome)
  redis.call('HSET', K.workflow_step(root, id, step_id), 'state', state, 'error', reason, 'finished_ms', now,
    unpack(fields))
  redis.call('HINCRBY', workflow_key, state == STEP_STATE.CANCELED and 'canceled' or 'failed', 1)
  local summary = 'step ' .. step_id .. ' ' .. state .. ': ' .. reason
  if workflow.policy == WF.POLICY.FAIL_FAST then
    WF.notify(root, id, 'step.' .. state, step_id, {'error', reason})
    WF.close(root, workflow, WF_STATE.FAILED, summary, now)
    return
  end
  local skipped = WF.skip_dependents(root, id, step_id, 'skipped: ' .. summary, now)
  redis.call('HINCRBY', workflow_key, 'skipped', skipped)
  if redis.call('HGET', workflow_key, 'error') == false then
    redis.call('HSET', workflow_key, 'error', summary)
  end
  local remaining = redis.call('HINCRBY', workflow_key, 'remaining', -1 - skipped)
  WF.notify(root, id, 'step.' .. state, step_id, {'error', reason, 'skipped', skipped})
  if remaining == 0 then
    WF.settle(root, workflow, now)
  end
end

-- workflow_on_task_finished(root, task, outcome, now): advance the workflow a task belongs to,
-- once the task reaches a terminal outcome ('completed', 'failed', 'dead', 'canceled' or
-- 'input-required'). `task` is a table of the task hash's fields. Called by the task functions
-- in the same call as the outcome, so a step and its workflow move together with the task.
local function workflow_on_task_finished(root, task, outcome, now)
  local workflow_id, step_id = task.workflow, task.step
  if not workflow_id or workflow_id == '' or not step_id or step_id == '' then
    return
  end
  local record = redis.call('HMGET', K.workflow(root, workflow_id), 'state', 'policy', 'retention_ms', 'traceparent')
  -- A finished, canceled or expired workflow ignores late outcomes.
  if record[1] ~= WF_STATE.RUNNING then
    return
  end
  local step_key = K.workflow_step(root, workflow_id, step_id)
  local step = redis.call('HMGET', step_key, 'state', 'task', 'attempts', 'started_ms', 'dependents')
  -- Only the step's current task moves it, and only while the step is queued.
  if step[1] ~= STEP_STATE.QUEUED or step[2] ~= task.id then
    return
  end
  local workflow = {id = workflow_id, policy = record[2], retention_ms = tonumber(record[3]), traceparent = record[4]}
  local fields = {'attempts', (tonumber(step[3]) or 0) + (tonumber(task.attempt) or 0),
    'started_ms', step[4] or task.started_ms or ''}
  if outcome == 'completed' then
    WF.step_completed(root, workflow, step_id, task.result, split_csv(step[5] or ''), now, fields)
  elseif outcome == 'input-required' then
    redis.call('HSET', step_key, 'state', STEP_STATE.INPUT_REQUIRED, 'prompt', task.prompt or 'null', unpack(fields))
    redis.call('HINCRBY', K.workflow(root, workflow_id), 'input_required', 1)
    WF.notify(root, workflow_id, 'step.input-required', step_id)
  else
    WF.step_failed(root, workflow, step_id, outcome, task.error, now, fields)
  end
end
