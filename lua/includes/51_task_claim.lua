-- Claiming (TASK.claim and its parts), used by agentfn_task_claim and by the NEXT option of
-- agentfn_task_complete and agentfn_task_fail.
--
-- The parts below take `clock`: the call's time as {ms = number, text = its text}, converted
-- once (each number passed to redis.call is converted to text on every call).
--
-- Order: the agent's direct stream first; then its capabilities' streams by priority (high,
-- normal, low). Within one priority, an agent with several capabilities takes from the stream
-- whose next undelivered entry is oldest (entry ids are times): the group's last-delivered-id
-- (XINFO GROUPS) followed by XRANGE (<id> + COUNT 1 finds each stream's next entry; ids are
-- milliseconds, so a tie goes to the capability listed first. An agent with one capability
-- reads its stream directly, without peeking.

-- TASK.take(root, stream, entry_id, task_id, agent_id, lease_ms, clock): start the attempt that a
-- delivered entry stands for and return the claimed task, flat. An entry whose task is gone or
-- no longer queued under it (canceled meanwhile) is acknowledged, deleted and skipped (nil).
function TASK.take(root, stream, entry_id, task_id, agent_id, lease_ms, clock)
  local key = task_id and K.task(root, task_id)
  local task = key and redis.call('HMGET', key, 'state', 'entry', 'attempt', 'timeout_ms',
    'capability', 'payload', 'priority', 'workflow', 'step', 'inputs')
  if not task or task[1] ~= STATE.QUEUED or task[2] ~= entry_id then
    redis.call('XACK', stream, GROUP, entry_id)
    redis.call('XDEL', stream, entry_id)
    return nil
  end
  local attempt = tostring(tonumber(task[3]) + 1)
  local deadline = tostring(clock.ms + (lease_ms or tonumber(task[4])))
  redis.call('HSET', key, 'state', STATE.RUNNING, 'attempt', attempt, 'agent', agent_id,
    'started_ms', clock.text, 'lease_deadline_ms', deadline)
  redis.call('ZADD', K.leases(root), deadline, task_id)
  redis.call('SADD', K.agent_tasks(root, agent_id), task_id)
  emit(root, 'task.running', {'task', task_id, 'agent', agent_id})
  return {'id', task_id, 'capability', task[5], 'payload', task[6], 'attempt', attempt,
    'token', attempt, 'lease_deadline_ms', deadline, 'priority', task[7],
    'workflow', task[8] or '', 'step', task[9] or '', 'inputs', task[10] or '', 'timeout_ms', task[4]}
end

-- TASK.deliver(root, stream, agent_id, count, lease_ms, clock, tasks): XREADGROUP up to `count`
-- new entries of one existing stream and append the tasks they start to `tasks`. Returns how
-- many entries the stream delivered (skipped ones included; fewer than count: it is drained).
function TASK.deliver(root, stream, agent_id, count, lease_ms, clock, tasks)
  local reply = redis.call('XREADGROUP', 'GROUP', GROUP, agent_id, 'COUNT', count, 'STREAMS', stream, '>')
  if not reply then
    return 0
  end
  local entries = reply[1][2]
  for _, entry in ipairs(entries) do
    local task = TASK.take(root, stream, entry[1], entry[2] and entry[2][2], agent_id, lease_ms, clock)
    if task then
      tasks[#tasks + 1] = task
    end
  end
  return #entries
end

-- TASK.read(root, stream, agent_id, goal, lease_ms, clock, tasks): claim from one stream until
-- `tasks` holds `goal` tasks or the stream has no undelivered entry.
function TASK.read(root, stream, agent_id, goal, lease_ms, clock, tasks)
  if redis.call('EXISTS', stream) == 0 then
    return
  end
  while #tasks < goal do
    local want = goal - #tasks
    if TASK.deliver(root, stream, agent_id, want, lease_ms, clock, tasks) < want then
      return
    end
  end
end

-- TASK.next_entry(stream, after): the id of the stream's first entry after id `after`, or nil.
function TASK.next_entry(stream, after)
  local entry = redis.call('XRANGE', stream, '(' .. after, '+', 'COUNT', 1)[1]
  return entry and entry[1]
end

-- TASK.next_undelivered(stream): the id of the stream's oldest undelivered entry, or nil.
function TASK.next_undelivered(stream)
  if redis.call('EXISTS', stream) == 0 then
    return nil
  end
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local info = hash_to_table(group)
    if info.name == GROUP then
      return TASK.next_entry(stream, info['last-delivered-id'])
    end
  end
  return nil
end

-- TASK.id_before(a, b): stream entry id a is older than b.
function TASK.id_before(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)%-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)%-(%d+)$')
  a_ms, b_ms = tonumber(a_ms), tonumber(b_ms)
  return a_ms < b_ms or (a_ms == b_ms and tonumber(a_seq) < tonumber(b_seq))
end

-- TASK.read_oldest_first(root, streams, agent_id, goal, lease_ms, clock, tasks): claim from
-- several streams of one priority, always the oldest next undelivered entry among them.
function TASK.read_oldest_first(root, streams, agent_id, goal, lease_ms, clock, tasks)
  local heads = {}
  for index, stream in ipairs(streams) do
    heads[index] = TASK.next_undelivered(stream)
  end
  while #tasks < goal do
    local best
    for index in ipairs(streams) do
      if heads[index] and (not best or TASK.id_before(heads[index], heads[best])) then
        best = index
      end
    end
    if not best then
      return
    end
    local stream = streams[best]
    if TASK.deliver(root, stream, agent_id, 1, lease_ms, clock, tasks) == 0 then
      heads[best] = nil
    else
      heads[best] = TASK.next_entry(stream, heads[best])
    end
  end
end

-- TASK.streams_of(root, agent_id, capabilities): every stream an agent reads from: its direct
-- stream, then its capabilities' streams (a list of names) of each priority.
function TASK.streams_of(root, agent_id, capabilities)
  local streams = {K.direct(root, agent_id)}
  for _, priority in ipairs(PRIORITIES) do
    for _, capability in ipairs(capabilities) do
      streams[#streams + 1] = K.queue(root, capability, priority)
    end
  end
  return streams
end

-- TASK.wait_list(root, agent_id, capabilities): every stream the agent reads from with its
-- last generated id ('0-0' for a stream that does not exist yet), flat: key, id, key, id...
-- XREAD BLOCK with these ids returns as soon as any of them gets a new entry after the claim.
function TASK.wait_list(root, agent_id, capabilities)
  local wait = {}
  for _, stream in ipairs(TASK.streams_of(root, agent_id, capabilities)) do
    local last_id = '0-0'
    if redis.call('EXISTS', stream) == 1 then
      last_id = hash_to_table(redis.call('XINFO', 'STREAM', stream))['last-generated-id']
    end
    wait[#wait + 1] = stream
    wait[#wait + 1] = last_id
  end
  return wait
end

-- TASK.claim(root, agent_id, capabilities, count, lease_ms, now): promote due delayed tasks,
-- then claim up to `count` tasks for a live agent (`capabilities`: its stored comma-separated
-- list; `lease_ms`: nil for each task's timeout_ms). Returns the claim reply: 'tasks', [task...],
-- 'wait', [key, id, ...], 'next_due_ms', ms|''. wait and next_due_ms are filled only when no
-- task was claimed (they are what the caller blocks on); next_due_ms is the earliest due time
-- in the delayed set.
function TASK.claim(root, agent_id, capabilities, count, lease_ms, now)
  local clock = {ms = now, text = tostring(now)}
  TASK.promote_due(root, clock.text, LIMITS.promote_batch)
  local tasks = {}
  TASK.read(root, K.direct(root, agent_id), agent_id, count, lease_ms, clock, tasks)
  local names = split_csv(capabilities)
  for _, priority in ipairs(PRIORITIES) do
    if #tasks >= count then
      break
    end
    if #names == 1 then
      TASK.read(root, K.queue(root, names[1], priority), agent_id, count, lease_ms, clock, tasks)
    elseif #names > 1 then
      local streams = {}
      for index, capability in ipairs(names) do
        streams[index] = K.queue(root, capability, priority)
      end
      TASK.read_oldest_first(root, streams, agent_id, count, lease_ms, clock, tasks)
    end
  end
  if #tasks > 0 then
    return {'tasks', tasks, 'wait', {}, 'next_due_ms', ''}
  end
  local soonest = redis.call('ZRANGE', K.delayed(root), 0, 0, 'WITHSCORES')
  return {'tasks', tasks, 'wait', TASK.wait_list(root, agent_id, names), 'next_due_ms', soonest[2] or ''}
end
