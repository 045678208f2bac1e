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

-- REAP.trim_dead_letters(root, now): drop dead-letter entries older than the default retention
-- (the dead-letter stream is a log of the last DEFAULTS.retention_ms; a dead task's record
-- keeps its own retention and can be requeued by id). Returns how many entries went.
function REAP.trim_dead_letters(root, now)
  return redis.call('XTRIM', K.dead(root), 'MINID', now - DEFAULTS.retention_ms)
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

-- REAP.trim_stream(stream, limit): drop the acknowledged entries of a work stream (those of
-- ended attempts), never one that is pending or undelivered. Those older than its oldest
-- pending entry (all of them when none is pending: up to the group's last-delivered-id; the
-- entries after it are undelivered) go with XTRIM MINID, whole nodes at a time; those between
-- the oldest pending entry and the last delivered one (attempts that ended while an older one
-- runs on) are deleted, looking at `limit` entries at most. Returns how many entries it looked
-- at. A stream without the group GROUP is left alone.
function REAP.trim_stream(stream, limit)
  local info = TASK.group_info(stream)
  if not info then
    return 0
  end
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

-- REAP.trim_streams(root, limit): REAP.trim_stream for every work stream of the namespace
-- (K.streams), looking at `limit` entries between pending ones in all; a stream that no longer
-- exists leaves K.streams.
function REAP.trim_streams(root, limit)
  local streams = K.streams(root)
  for _, stream in ipairs(redis.call('SMEMBERS', streams)) do
    if redis.call('EXISTS', stream) == 0 then
      redis.call('SREM', streams, stream)
    else
      limit = limit - REAP.trim_stream(stream, limit)
    end
  end
end
