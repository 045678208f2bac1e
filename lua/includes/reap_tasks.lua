-- REAP: the task side of agentfn_reap.
local REAP = {}

-- REAP.expired_leases(root, now, limit): up to `limit` running tasks whose lease deadline has
-- passed (earliest first) lose their attempt, which counts as failed with error 'lease
-- expired': queued again at once, or dead when out of attempts. A lease left by a task that is
-- no longer running is dropped. Returns expired, requeued, dead_lettered.
function REAP.expired_leases(root, now, limit)
  local leases = K.leases(root)
  local expired, requeued, dead_lettered = 0, 0, 0
  for _, task_id in ipairs(redis.call('ZRANGE', leases, '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)) do
    local task = SETTLE.load(root, task_id, true)
    if task.state == STATE.RUNNING then
      TASK.unlink(root, task_id, task)
      local state = SETTLE.after_failure(root, task_id, task, 'lease expired', now, true, false)
      expired = expired + 1
      if state == STATE.DEAD then
        dead_lettered = dead_lettered + 1
      else
        requeued = requeued + 1
      end
    else
      redis.call('ZREM', leases, task_id)
    end
  end
  return expired, requeued, dead_lettered
end

-- REAP.spend(budget, part, root, now): run a part of the reap that returns (its count, the
-- budget it used) with what is left of the budget, when any is; returns its count (0 when it
-- did not run) and the budget left.
function REAP.spend(budget, part, root, now)
  if budget <= 0 then
    return 0, budget
  end
  local count, used = part(root, now, budget)
  return count, budget - used
end

-- REAP.expired_indexes(root, now, limit): the status indexes keep each inbox (K.inboxes), each
-- lapsed agent's record (K.lapsed) and each finished workflow (K.workflow_expiry, with its
-- state's K.workflows) scored by when its keys expire; up to `limit` members whose time has
-- passed (their keys are gone) leave them. Returns how many went, twice (its count and the
-- budget it used, for REAP.spend).
function REAP.expired_indexes(root, now, limit)
  local before = '(' .. string.format('%d', now)
  local count = 0
  for _, index in ipairs({K.inboxes(root), K.lapsed(root), K.workflow_expiry(root)}) do
    if count >= limit then
      break
    end
    local due = redis.call('ZRANGE', index, '-inf', before, 'BYSCORE', 'LIMIT', 0, limit - count)
    for _, member in ipairs(due) do
      local state, workflow_id = string.match(member, '^(%S+) (%S+)$')
      if index == K.workflow_expiry(root) and state then
        redis.call('ZREM', K.workflows(root, state), workflow_id)
      end
      redis.call('ZREM', index, member)
    end
    count = count + #due
  end
  return count, count
end

-- REAP.trim_dead_letters(root, now, limit): drop up to `limit` dead letters older than the
-- namespace's dead_retention_ms, and with each the record of its task (and the task's
-- idempotency key) when the task is still dead under that entry (a requeued task lives on): a
-- dead task's record lives exactly as long as its dead letter, so requeue works on every dead
-- letter listed. The stream goes when it is empty. Returns how many entries went, twice (its
-- count and the budget it used, for REAP.spend).
function REAP.trim_dead_letters(root, now, limit)
  local dead = K.dead(root)
  local before = now - CONFIG.duration(root, 'dead_retention_ms') - 1
  if before < 0 then
    return 0, 0
  end
  local entries = redis.call('XRANGE', dead, '-', string.format('%d', before), 'COUNT', string.format('%d', limit))
  if #entries == 0 then
    return 0, 0
  end
  local ids = {}
  for index, entry in ipairs(entries) do
    ids[index] = entry[1]
    local task_id = entry[2][2]
    local key = K.task(root, task_id)
    local task = redis.call('HMGET', key, 'state', 'entry', 'idempotency_key')
    if task[1] == STATE.DEAD and task[2] == entry[1] then
      redis.call('DEL', key)
      if task[3] and task[3] ~= '' and redis.call('GET', K.idempotency(root, task[3])) == task_id then
        redis.call('DEL', K.idempotency(root, task[3]))
      end
    end
  end
  redis.call('XDEL', dead, unpack(ids))
  if redis.call('XLEN', dead) == 0 then
    redis.call('DEL', dead)
  end
  return #entries, #entries
end

-- REAP.orphans(root, now, limit): the direct tasks of departed agents (K.orphans, due first)
-- whose grace has passed are dead-lettered with error 'agent gone': a queued direct task's
-- grace (its grace_ms, default DEFAULTS.direct_grace_ms) counts from when its agent went
-- (K.orphans_since) or from when it was queued, whichever is later. Looks at `limit` stream
-- entries at most. An agent whose direct stream holds tasks still in their grace is checked
-- again at the earliest end of grace; once the stream holds none, the stream is deleted and the
-- agent leaves K.orphans; an agent that came back leaves K.orphans. Returns how many tasks were
-- dead-lettered and how much of `limit` it used (agents and entries).
function REAP.orphans(root, now, limit)
  local orphans, since_key = K.orphans(root), K.orphans_since(root)
  local due = redis.call('ZRANGE', orphans, '-inf', ms_text(now), 'BYSCORE', 'LIMIT', '0',
    constant_text(LIMITS.sweep_batch))
  local dead_lettered, budget = 0, limit
  for _, agent_id in ipairs(due) do
    limit = limit - 1
    if limit <= 0 then
      break
    end
    local deadline = redis.call('ZSCORE', K.agents(root), agent_id)
    if deadline and tonumber(deadline) > now then
      redis.call('ZREM', orphans, agent_id)
      redis.call('HDEL', since_key, agent_id)
    else
      local since = tonumber(redis.call('HGET', since_key, agent_id) or '') or now
      local stream = K.direct(root, agent_id)
      local entries = redis.call('XRANGE', stream, '-', '+', 'COUNT', string.format('%d', limit))
      limit = limit - #entries
      local next_check
      for _, entry in ipairs(entries) do
        local task_id = entry[2][2]
        local task = redis.call('HMGET', K.task(root, task_id), 'state', 'entry', 'due_ms', 'grace_ms')
        local ends = nil
        if task[1] == STATE.QUEUED and task[2] == entry[1] then
          ends = math.max(since, tonumber(task[3]) or now) + (tonumber(task[4] or '') or DEFAULTS.direct_grace_ms)
        end
        if ends and ends > now then
          next_check = math.min(next_check or ends, ends)
        else
          -- the grace is over, or an entry of an attempt that ended (its agent, the stream's one
          -- consumer, is gone: nothing is pending)
          redis.call('XDEL', stream, entry[1])
          if ends then
            local loaded = SETTLE.load(root, task_id, true)
            SETTLE.dead_letter(root, task_id, loaded, 'agent gone', SETTLE.errors_with(loaded, 'agent gone', now), now)
            dead_lettered = dead_lettered + 1
          end
        end
      end
      if limit > 0 then -- the whole stream was seen
        if next_check then
          redis.call('ZADD', orphans, ms_text(next_check), agent_id)
        else
          REAP.drop_stream(root, stream)
          redis.call('ZREM', orphans, agent_id)
          redis.call('HDEL', since_key, agent_id)
        end
      end
    end
  end
  return dead_lettered, budget - math.max(limit, 0)
end

-- REAP.drop_stream(root, stream): delete a work stream and its place in K.streams and K.trim.
function REAP.drop_stream(root, stream)
  redis.call('DEL', stream)
  redis.call('SREM', K.streams(root), stream)
  redis.call('ZREM', K.trim(root), stream)
end

-- REAP.drop_acknowledged(stream, oldest_pending, last_delivered, limit): delete the entries
-- after the oldest pending one, up to the group's last delivered one, that are not pending
-- (acknowledged: their attempts ended while an older one still runs), looking at `limit`
-- entries at most. Returns how many entries it looked at.
function REAP.drop_acknowledged(stream, oldest_pending, last_delivered, limit)
  local count = string.format('%d', limit)
  local entries = redis.call('XRANGE', stream, '(' .. oldest_pending, last_delivered, 'COUNT', count)
  if #entries == 0 then
    return 0
  end
  local pending = {}
  for _, entry in ipairs(redis.call('XPENDING', stream, GROUP, '(' .. oldest_pending, entries[#entries][1], count)) do
    pending[entry[1]] = true
  end
  local acknowledged = {}
  for _, entry in ipairs(entries) do
    if not pending[entry[1]] then
      acknowledged[#acknowledged + 1] = entry[1]
    end
  end
  if #acknowledged > 0 then
    redis.call('XDEL', stream, unpack(acknowledged))
  end
  return #entries
end

-- REAP.trim_stream(stream, info, limit): drop the acknowledged entries of a work stream (those
-- of ended attempts), never one that is pending or undelivered (`info`: its group's, from
-- TASK.group_info). Those older than its oldest pending entry (all of them when none is
-- pending: up to the group's last-delivered-id; the entries after it are undelivered) go with
-- XTRIM MINID, whole nodes at a time; those between the oldest pending entry and the last
-- delivered one (attempts that ended while an older one runs on) are deleted, looking at
-- `limit` entries at most. Returns how many entries it looked at.
function REAP.trim_stream(stream, info, limit)
  local last_delivered = info['last-delivered-id']
  if tonumber(info.pending) == 0 then
    local ms, seq = string.match(last_delivered, '^(%d+)%-(%d+)$')
    redis.call('XTRIM', stream, 'MINID', ms .. '-' .. string.format('%d', tonumber(seq) + 1))
    return 0
  end
  local oldest_pending = redis.call('XPENDING', stream, GROUP, '-', '+', '1')[1][1]
  redis.call('XTRIM', stream, 'MINID', oldest_pending)
  if limit <= 0 or oldest_pending == last_delivered then
    return 0
  end
  return REAP.drop_acknowledged(stream, oldest_pending, last_delivered, limit)
end

-- REAP.in_use(root, stream, info, now): whether a live agent may read the stream: a consumer of
-- its group is left (`info`) and, for a direct stream, its agent is live; for a capability's
-- stream, some agent with the capability is live.
function REAP.in_use(root, stream, info, now)
  if tonumber(info.consumers) == 0 then
    return false
  end
  local agent_id = TASK.direct_agent(root, stream)
  if agent_id then
    local deadline = redis.call('ZSCORE', K.agents(root), agent_id)
    return deadline ~= false and deadline ~= nil and tonumber(deadline) > now
  end
  local capability = string.match(string.sub(stream, #root + 8), '^(.*):[^:]+$')
  return #redis.call('ZRANGE', K.capability(root, capability), '(' .. ms_text(now), '+inf', 'BYSCORE',
    'LIMIT', '0', '1') > 0
end

-- REAP.visit_stream(root, stream, limit, now): one stream of the trim index: trimmed
-- (REAP.trim_stream, `limit` entries looked at at most), then deleted when it holds nothing
-- (no undelivered nor pending entry) and no live agent reads it (REAP.in_use); a direct stream
-- that still holds tasks of an agent that is not live is watched (TASK.watch_direct). It
-- leaves the index unless the limit cut its trimming short. Returns the entries looked at and
-- whether it was deleted.
function REAP.visit_stream(root, stream, limit, now)
  local info = redis.call('EXISTS', stream) == 1 and TASK.group_info(stream)
  if not info then
    redis.call('SREM', K.streams(root), stream)
    redis.call('ZREM', K.trim(root), stream)
    return 0, false
  end
  local looked = REAP.trim_stream(stream, info, limit)
  if tonumber(info.pending) == 0 and redis.call('XLEN', stream) == 0 then
    if not REAP.in_use(root, stream, info, now) then
      REAP.drop_stream(root, stream)
      return looked, true
    end
  else
    local agent_id = TASK.direct_agent(root, stream)
    if agent_id then
      TASK.watch_direct(root, agent_id, 'NX')
    end
  end
  if looked < limit then
    redis.call('ZREM', K.trim(root), stream)
  end
  return looked, false
end

-- REAP.visit_streams(root, now, limit): REAP.visit_stream for the streams of the trim index
-- that are due (at most LIMITS.trim_batch, oldest first), looking at `limit` entries between
-- pending ones in all, each stream counting 1 more: the reaper's cost follows the work that
-- ended since, not the number of streams the namespace ever had. Returns how many streams were
-- deleted and how much of `limit` it used.
function REAP.visit_streams(root, now, limit)
  local deleted, budget = 0, limit
  for _, stream in ipairs(redis.call('ZRANGE', K.trim(root), '-inf', ms_text(now), 'BYSCORE', 'LIMIT', '0',
      string.format('%d', math.min(LIMITS.trim_batch, limit)))) do
    limit = limit - 1
    local looked, dropped = REAP.visit_stream(root, stream, math.max(limit, 0), now)
    limit = math.max(limit - looked, 0)
    if dropped then
      deleted = deleted + 1
    end
  end
  return deleted, budget - limit
end
