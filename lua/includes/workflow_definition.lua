-- Workflow definitions (validated whole before anything is written), storage and replies.

-- The fields a definition and a step may have; anything else is refused (it is likely a typo).
WF.DEFINITION_FIELDS = {steps = true, policy = true, id = true, chain = true}
WF.STEP_FIELDS = {id = true, capability = true, input = true, depends_on = true, max_attempts = true,
  backoff_ms = true, timeout_ms = true, priority = true}
-- The optional task options a step may set, stored with the step.
WF.STEP_OPTIONS = {'max_attempts', 'backoff_ms', 'timeout_ms', 'priority'}

-- WF.is_array(value): a decoded JSON array (a decoded empty object passes too).
function WF.is_array(value)
  if type(value) ~= 'table' then
    return false
  end
  local count = 0
  for key in pairs(value) do
    if type(key) ~= 'number' then
      return false
    end
    count = count + 1
  end
  return count == #value
end

-- WF.object(value, what, allowed): a decoded JSON object with only `allowed` fields; JSON null
-- fields count as absent.
function WF.object(value, what, allowed)
  if type(value) ~= 'table' or (next(value) ~= nil and WF.is_array(value)) then
    raise(ERR.BADARG, what .. ' must be a JSON object')
  end
  for key, field in pairs(value) do
    if not allowed[key] then
      raise(ERR.BADARG, what .. ' has an unknown field ' .. quoted(key))
    end
    if field == cjson.null then
      value[key] = nil
    end
  end
  return value
end

-- WF.string(value, what): a JSON string (for check_id and friends).
function WF.string(value, what)
  if type(value) ~= 'string' then
    raise(ERR.BADARG, what .. ' must be a string')
  end
  return value
end

-- WF.integer(value, what, min, max): a JSON number that is a whole number within [min, max], or nil.
function WF.integer(value, what, min, max)
  if value ~= nil and (type(value) ~= 'number' or value ~= math.floor(value) or value < min or value > max) then
    raise(ERR.BADARG, what .. ' must be an integer between ' .. min .. ' and ' .. max)
  end
  return value
end

-- WF.parse_step(raw, index, previous_id, chain): one step of a definition, checked; its
-- depends_on is the previous step alone in a chain.
function WF.parse_step(raw, index, previous_id, chain)
  local where = 'steps[' .. (index - 1) .. ']'
  WF.object(raw, where, WF.STEP_FIELDS)
  local step_id = check_id(WF.string(raw.id, where .. '.id'), where .. '.id')
  if string.sub(step_id, 1, 1) == '_' then
    raise(ERR.BADARG, where .. '.id may not start with _ (reserved for fields the library adds to inputs)')
  end
  where = 'step ' .. step_id
  local step = {id = step_id, dependents = {},
    capability = check_capability(WF.string(raw.capability, where .. ': capability'), where .. ': capability'),
    max_attempts = WF.integer(raw.max_attempts, where .. ': max_attempts', 1, LIMITS.max_attempts),
    backoff_ms = WF.integer(raw.backoff_ms, where .. ': backoff_ms', 0, LIMITS.duration_ms),
    timeout_ms = WF.integer(raw.timeout_ms, where .. ': timeout_ms', 1, LIMITS.duration_ms),
    priority = raw.priority and check_enum(raw.priority, where .. ': priority', PRIORITIES)}
  if chain then
    if raw.depends_on ~= nil then
      raise(ERR.BADARG, where .. ': depends_on cannot be given in a chain (each step depends on the one before)')
    end
    step.depends_on = previous_id and {previous_id} or {}
  elseif raw.depends_on == nil then
    step.depends_on = {}
  elseif not WF.is_array(raw.depends_on) then
    raise(ERR.BADARG, where .. ': depends_on must be an array of step ids')
  else
    step.depends_on = raw.depends_on
    for position, dependency in ipairs(step.depends_on) do
      check_id(WF.string(dependency, where .. ': depends_on[' .. (position - 1) .. ']'), where .. ': depends_on')
    end
  end
  return step
end

-- WF.link(steps): index the steps by id, check their dependencies (no duplicate steps, no unknown
-- or repeated dependencies) and fill each step's dependents. Returns the index.
function WF.link(steps)
  local by_id = {}
  for _, step in ipairs(steps) do
    if by_id[step.id] then
      raise(ERR.BADARG, 'step id ' .. step.id .. ' is used twice')
    end
    by_id[step.id] = step
  end
  for _, step in ipairs(steps) do
    local listed = {}
    for _, dependency in ipairs(step.depends_on) do
      if not by_id[dependency] then
        raise(ERR.BADARG, 'step ' .. step.id .. ' depends on unknown step ' .. dependency)
      end
      if listed[dependency] then
        raise(ERR.BADARG, 'step ' .. step.id .. ' lists dependency ' .. dependency .. ' twice')
      end
      listed[dependency] = true
      local dependents = by_id[dependency].dependents
      dependents[#dependents + 1] = step.id
    end
  end
  return by_id
end

-- WF.check_acyclic(steps, by_id): raise CYCLE naming the steps of one cycle, if there is one.
-- Kahn's algorithm removes every step whose dependencies are all removed; each step left over
-- has a dependency that is left over too, so walking from one to such a dependency must come
-- back to a step already walked: the walk from there on is a cycle.
function WF.check_acyclic(steps, by_id)
  local unmet, order, head = {}, {}, 1
  for _, step in ipairs(steps) do
    unmet[step.id] = #step.depends_on
    if unmet[step.id] == 0 then
      order[#order + 1] = step.id
    end
  end
  while head <= #order do
    for _, dependent in ipairs(by_id[order[head]].dependents) do
      unmet[dependent] = unmet[dependent] - 1
      if unmet[dependent] == 0 then
        order[#order + 1] = dependent
      end
    end
    head = head + 1
  end
  if #order == #steps then
    return
  end
  local at
  for _, step in ipairs(steps) do
    if unmet[step.id] > 0 then
      at = step.id
      break
    end
  end
  local path, position = {}, {}
  while not position[at] do
    path[#path + 1] = at
    position[at] = #path
    for _, dependency in ipairs(by_id[at].depends_on) do
      if unmet[dependency] > 0 then
        at = dependency
        break
      end
    end
  end
  -- path[i] depends on path[i + 1]; the cycle, listed so that each step depends on the one before.
  -- Listed from the cycle's step that comes first in the definition.
  local defined, first = {}, #path
  for index, step in ipairs(steps) do
    defined[step.id] = index
  end
  for index = position[at], #path do
    if defined[path[index]] < defined[path[first]] then
      first = index
    end
  end
  local cycle = {}
  for offset = 0, #path - position[at] do
    local index = first - offset
    if index < position[at] then
      index = index + #path - position[at] + 1
    end
    cycle[#cycle + 1] = path[index]
  end
  cycle[#cycle + 1] = cycle[1]
  raise(ERR.CYCLE, 'steps ' .. table.concat(cycle, ' -> ') .. ' form a cycle (each depends on the one before it)')
end

-- WF.parse_definition(text): the workflow definition (JSON text), checked whole: shape, ids,
-- capabilities, options of each step, dependencies, size and cycles. Returns {id (or nil),
-- policy, steps = {step...}} where each step has id, capability, input (JSON text as written),
-- depends_on, dependents, max_attempts, timeout_ms and priority.
function WF.parse_definition(text)
  check_json(text, 'definition', 'object')
  local definition = WF.object(cjson.decode(text), 'definition', WF.DEFINITION_FIELDS)
  local raw_steps = definition.steps
  if not WF.is_array(raw_steps) then
    raise(ERR.BADARG, 'definition.steps must be an array of steps')
  end
  if #raw_steps == 0 then
    raise(ERR.BADARG, 'the workflow has no steps')
  end
  if #raw_steps > LIMITS.workflow_steps then
    raise(ERR.LIMIT, 'a workflow may have at most ' .. LIMITS.workflow_steps .. ' steps, got ' .. #raw_steps)
  end
  if definition.chain ~= nil and type(definition.chain) ~= 'boolean' then
    raise(ERR.BADARG, 'definition.chain must be true or false')
  end
  local workflow_id = definition.id and check_id(WF.string(definition.id, 'definition.id'), 'definition.id')
  local policy = check_enum(definition.policy or WF.POLICY.FAIL_FAST, 'definition.policy',
    {WF.POLICY.FAIL_FAST, WF.POLICY.CONTINUE})
  local steps = {}
  for index, raw in ipairs(raw_steps) do
    steps[index] = WF.parse_step(raw, index, steps[index - 1] and steps[index - 1].id, definition.chain)
  end
  WF.check_acyclic(steps, WF.link(steps))
  local inputs = WF.step_input_texts(text)
  for index, step in ipairs(steps) do
    step.input = inputs[index] or 'null'
  end
  return {id = workflow_id, policy = policy, steps = steps}
end

-- WF.new_id(root): a workflow id from the namespace's counter (w1, w2, ...), skipping any a
-- caller chose already.
function WF.new_id(root)
  local workflow_id
  repeat
    workflow_id = 'w' .. redis.call('HINCRBY', K.meta(root), 'workflow_seq', 1)
  until redis.call('EXISTS', K.workflow(root, workflow_id)) == 0
  return workflow_id
end

-- WF.store_steps(root, workflow_id, steps): write the step list, each step's record (waiting) and
-- the unmet dependency count of each step that has dependencies.
function WF.store_steps(root, workflow_id, steps)
  local ids, unmet = {}, {}
  for index, step in ipairs(steps) do
    ids[index] = step.id
    local fields = {'id', step.id, 'capability', step.capability, 'input', step.input, 'state', STEP_STATE.WAITING,
      'attempts', 0, 'depends_on', table.concat(step.depends_on, ','), 'dependents', table.concat(step.dependents, ',')}
    for _, name in ipairs(WF.STEP_OPTIONS) do
      if step[name] then
        fields[#fields + 1] = name
        fields[#fields + 1] = step[name]
      end
    end
    redis.call('HSET', K.workflow_step(root, workflow_id, step.id), unpack(fields))
    if #step.depends_on > 0 then
      unmet[#unmet + 1] = step.id
      unmet[#unmet + 1] = #step.depends_on
    end
  end
  WF.call_chunked('RPUSH', K.workflow_steps(root, workflow_id), ids)
  WF.call_chunked('HSET', K.workflow_unmet(root, workflow_id), unmet)
end

-- WF.existing(root, workflow_id): the workflow's state, policy, retention and traceparent as a table; raises
-- NOTFOUND when it does not exist (or expired). No writes.
function WF.existing(root, workflow_id)
  local record = redis.call('HMGET', K.workflow(root, workflow_id), 'state', 'policy', 'retention_ms', 'traceparent')
  if not record[1] then
    raise(ERR.NOTFOUND, 'workflow ' .. workflow_id .. ' does not exist')
  end
  return {id = workflow_id, state = record[1], policy = record[2], retention_ms = tonumber(record[3]),
    traceparent = record[4]}
end

-- The fields of agentfn_wf_get's reply, in order.
WF.SUMMARY_FIELDS = {'id', 'state', 'policy', 'created_ms', 'finished_ms', 'error', 'step_count', 'remaining',
  'completed', 'failed', 'skipped', 'canceled', 'input_required', 'context_version', 'retention_ms', 'traceparent'}
WF.STEP_REPLY_FIELDS = {'id', 'capability', 'state', 'depends_on', 'input', 'attempts', 'task', 'result', 'error',
  'prompt', 'signal', 'queued_ms', 'started_ms', 'finished_ms'}

-- WF.step_reply(root, workflow_id, step_id): one step as a flat array, with task_state and, while
-- the step is queued, its live task's attempt added to attempts and its start time. No writes.
function WF.step_reply(root, workflow_id, step_id)
  local values = redis.call('HMGET', K.workflow_step(root, workflow_id, step_id), unpack(WF.STEP_REPLY_FIELDS))
  local task_state = ''
  if values[7] then
    local task = redis.call('HMGET', K.task(root, values[7]), 'state', 'attempt', 'started_ms')
    task_state = task[1] or ''
    if values[3] == STEP_STATE.QUEUED then
      values[6] = tostring((tonumber(values[6]) or 0) + (tonumber(task[2]) or 0))
      values[13] = values[13] or task[3]
    end
  end
  local reply = flat_reply(WF.STEP_REPLY_FIELDS, values)
  reply[#reply + 1] = 'task_state'
  reply[#reply + 1] = task_state
  return reply
end
