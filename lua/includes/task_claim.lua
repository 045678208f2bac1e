-- Claiming (TASK.claim and its parts), used by agentfn_task_claim and by the NEXT option of
-- agentfn_task_complete and agentfn_task_fail.
--
-- The parts below share `claim`, the state of one claim: root, agent_id, goal (how many tasks at
-- most), lease_ms (nil: each task's timeout_ms), key (what the tokens derive from: TASK.token), ms and ms_text (the call's time and its text,
-- converted once: every number passed to redis.call is converted on each call, so they pass
-- text), and tasks (the claimed tasks so far). They read from a `source`: {key = a work stream,
-- capability, priority}. A capability's stream holds only tasks of its capability and priority
-- (the stream is named after them), so a task read from it needs neither field read from its
-- hash; the agent's direct stream holds any (its source has no capability nor priority).
--
-- Order: the agent's direct stream first; then its capabilities' streams by priority (high,
-- normal, low). Within one priority, an agent with several capabilities takes from the stream
-- whose next undelivered entry is oldest (entry ids are times): the group's last-delivered-id
-- (XINFO GROUPS) followed by XRANGE (<id> + COUNT 1 finds each stream's next entry; ids are
-- milliseconds, so a tie goes to the capability listed first. An agent with one capability
-- reads its stream directly, without peeking.

-- TASK.take(claim, source, entry_id, task_id): start the attempt that a delivered entry stands
-- for and return the claimed task, flat, and its lease deadline (the caller adds the task to
-- the leases). An entry whose task is gone or no longer queued
-- under it (canceled meanwhile) is acknowledged, deleted and skipped (nil).
function TASK.take(claim, source, entry_id, task_id)
  local key = task_id and K.task(claim.root, task_id)
  local task
  if key and source.capability then
    task = redis.call('HMGET', key, 'state', 'entry', 'attempt', 'timeout_ms', 'payload', 'workflow', 'step', 'inputs',
      'traceparent')
  elseif key then
    task = redis.call('HMGET', key, 'state', 'entry', 'attempt', 'timeout_ms', 'payload', 'workflow', 'step', 'inputs',
      'traceparent', 'capability', 'priority')
  end
  if not task or task[1] ~= STATE.QUEUED or task[2] ~= entry_id then
    redis.call('XACK', source.key, GROUP, entry_id)
    redis.call('XDEL', source.key, entry_id)
    TASK.mark_trim(claim.root, source.key)
    return nil
  end
  local attempt = string.format('%d', tonumber(task[3]) + 1)
  local deadline = ms_text(claim.ms + (claim.lease_ms or tonumber(task[4])))
  local token = TASK.token(claim.key, task_id, attempt)
  redis.call('HSET', key, 'state', STATE.RUNNING, 'attempt', attempt, 'agent', claim.agent_id,
    'started_ms', claim.ms_text, 'lease_deadline_ms', deadline, 'token_sha1', redis.sha1hex(token))
  emit(claim.root, 'task.running', {'task', task_id, 'agent', claim.agent_id})
  return {'id', task_id, 'capability', source.capability or task[10], 'payload', task[5], 'attempt', attempt,
    'token', token, 'lease_deadline_ms', deadline, 'priority', source.priority or task[11],
    'workflow', task[6] or '', 'step', task[7] or '', 'inputs', task[8] or '', 'timeout_ms', task[4],
    'traceparent', task[9] or ''}, deadline
end

-- TASK.deliver(claim, source, count): XREADGROUP up to `count` new entries of one existing
-- stream and add the tasks they start to claim.tasks and to the leases (one ZADD for them all).
-- The agent holds them as pending entries of its consumer: no set of its tasks is kept (its
-- holdings are read back with XPENDING, see release_agent_tasks). Returns how many entries the
-- stream delivered (skipped ones included; fewer than count: it is drained).
function TASK.deliver(claim, source, count)
  local ok, reply = pcall(redis.call, 'XREADGROUP', 'GROUP', GROUP, claim.agent_id, 'COUNT',
    string.format('%d', count), 'STREAMS', source.key, '>')
  if not ok then -- NOGROUP: the stream (or its group) was deleted outside the library: nothing to read
    if failure_code(reply) == 'NOGROUP' then
      return 0
    end
    error(reply, 0)
  end
  if not reply then
    return 0
  end
  local entries, tasks = reply[1][2], claim.tasks
  if #entries == 1 then -- a claim of one: written at once (building the lists would cost more)
    local task, deadline = TASK.take(claim, source, entries[1][1], entries[1][2] and entries[1][2][2])
    if task then
      tasks[#tasks + 1] = task
      redis.call('ZADD', K.leases(claim.root), deadline, task[2])
    end
    return 1
  end
  local leases = {}
  for _, entry in ipairs(entries) do
    local task, deadline = TASK.take(claim, source, entry[1], entry[2] and entry[2][2])
    if task then
      tasks[#tasks + 1] = task
      leases[#leases + 1] = deadline
      leases[#leases + 1] = task[2]
    end
  end
  if #leases > 0 then
    redis.call('ZADD', K.leases(claim.root), unpack(leases))
  end
  return #entries
end

-- TASK.listed(root, streams): the set (a table: stream -> true) of those of `streams` that
-- exist, from one SMISMEMBER of the namespace's work streams K.streams instead of an EXISTS
-- each: the library adds a work stream to K.streams when it creates it (TASK.enqueue) and
-- removes it when it deletes it (REAP.drop_stream), so membership is existence. (A stream
-- deleted by hand is still listed until the reaper's next visit: TASK.deliver reads nothing
-- from it.)
function TASK.listed(root, streams)
  local flags = redis.call('SMISMEMBER', K.streams(root), unpack(streams))
  local listed = {}
  for index, stream in ipairs(streams) do
    if flags[index] == 1 then
      listed[stream] = true
    end
  end
  return listed
end

-- TASK.read(claim, source): claim from one stream until claim.tasks holds claim.goal tasks or
-- the stream has no undelivered entry (claim.listed: the streams that exist, TASK.listed).
function TASK.read(claim, source)
  if not claim.listed[source.key] then
    return
  end
  while #claim.tasks < claim.goal do
    local want = claim.goal - #claim.tasks
    if TASK.deliver(claim, source, want) < want then
      return
    end
  end
end

-- TASK.next_entry(stream, after): the id of the stream's first entry after id `after`, or nil.
function TASK.next_entry(stream, after)
  local entry = redis.call('XRANGE', stream, '(' .. after, '+', 'COUNT', '1')[1]
  return entry and entry[1]
end

-- TASK.group_info(stream): the fields of the consumer group GROUP of an existing stream
-- (XINFO GROUPS: name, pending, last-delivered-id...) as a table, or nil when it has none.
function TASK.group_info(stream)
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local info = hash_to_table(group)
    if info.name == GROUP then
      return info
    end
  end
  return nil
end

-- TASK.next_undelivered(stream): the id of the stream's oldest undelivered entry, or nil.
function TASK.next_undelivered(stream)
  local info = redis.call('EXISTS', stream) == 1 and TASK.group_info(stream)
  return info and TASK.next_entry(stream, info['last-delivered-id']) or nil
end

-- TASK.id_before(a, b): stream entry id a is older than b.
function TASK.id_before(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)%-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)%-(%d+)$')
  a_ms, b_ms = tonumber(a_ms), tonumber(b_ms)
  return a_ms < b_ms or (a_ms == b_ms and tonumber(a_seq) < tonumber(b_seq))
end

-- TASK.read_oldest_first(claim, sources): claim from several streams of one priority, always
-- the oldest next undelivered entry among them.
function TASK.read_oldest_first(claim, sources)
  local heads = {}
  for index, source in ipairs(sources) do
    heads[index] = claim.listed[source.key] and TASK.next_undelivered(source.key) or nil
  end
  while #claim.tasks < claim.goal do
    local best
    for index in ipairs(sources) do
      if heads[index] and (not best or TASK.id_before(heads[index], heads[best])) then
        best = index
      end
    end
    if not best then
      return
    end
    local source = sources[best]
    if TASK.deliver(claim, source, 1) == 0 then
      heads[best] = nil
    else
      heads[best] = TASK.next_entry(source.key, heads[best])
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

-- TASK.newest_id(stream): the id of the stream's newest entry; '0-0' when it has none (or does
-- not exist). XREAD returns the entries after the id it is given: none exists after the newest
-- entry, and every new one gets an id above the stream's last generated id, which is at least
-- the newest entry's (it is more when newer entries were deleted or trimmed), and above 0-0. So
-- XREAD from this id wakes exactly on the entries added later, as from the last generated id
-- (XINFO STREAM, which costs several times more).
function TASK.newest_id(stream)
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', '1')[1]
  return newest and newest[1] or '0-0'
end

-- TASK.wait_list(root, agent_id, capabilities): every stream the agent reads from, and the
-- namespace's delayed-wake stream (an entry each time a delayed task becomes the earliest due),
-- each with its newest id, flat: key, id, key, id... XREAD BLOCK with these ids returns as soon
-- as any of them gets a new entry after the claim.
function TASK.wait_list(root, agent_id, capabilities)
  local wait = {}
  local streams = TASK.streams_of(root, agent_id, capabilities)
  streams[#streams + 1] = K.delayed_wake(root)
  for _, stream in ipairs(streams) do
    wait[#wait + 1] = stream
    wait[#wait + 1] = TASK.newest_id(stream)
  end
  return wait
end

-- TASK.claim(root, agent_id, capabilities, count, lease_ms, now, key): promote due delayed tasks,
-- then claim up to `count` tasks for a live agent (`capabilities`: its stored comma-separated
-- list; `lease_ms`: nil for each task's timeout_ms; `key`: what their tokens derive from, the
-- agent's secret or the token presented to complete/fail NEXT, see TASK.token). Returns the claim reply: 'tasks', [task...],
-- 'wait', [key, id, ...], 'next_due_ms', ms|''. wait and next_due_ms are filled whenever fewer
-- than `count` tasks were claimed (every stream was drained: they are what the caller blocks on
-- for its remaining slots); next_due_ms is the earliest due time in the delayed set.
function TASK.claim(root, agent_id, capabilities, count, lease_ms, now, key)
  local claim = {root = root, agent_id = agent_id, goal = count, lease_ms = lease_ms, key = key, ms = now,
    ms_text = ms_text(now), tasks = {}}
  TASK.promote_due(root, claim.ms_text, LIMITS.promote_batch)
  local names = split_csv(capabilities)
  claim.listed = TASK.listed(root, TASK.streams_of(root, agent_id, names))
  TASK.read(claim, {key = K.direct(root, agent_id)})
  for _, priority in ipairs(PRIORITIES) do
    if #claim.tasks >= count then
      break
    end
    if #names == 1 then
      TASK.read(claim, {key = K.queue(root, names[1], priority), capability = names[1], priority = priority})
    elseif #names > 1 then
      local sources = {}
      for index, capability in ipairs(names) do
        sources[index] = {key = K.queue(root, capability, priority), capability = capability, priority = priority}
      end
      TASK.read_oldest_first(claim, sources)
    end
  end
  if #claim.tasks >= count then
    return {'tasks', claim.tasks, 'wait', {}, 'next_due_ms', ''}
  end
  local soonest = redis.call('ZRANGE', K.delayed(root), '0', '0', 'WITHSCORES')
  return {'tasks', claim.tasks, 'wait', TASK.wait_list(root, agent_id, names), 'next_due_ms', soonest[2] or ''}
end
