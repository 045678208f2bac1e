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
    local task = TASK.load(root, task_id, SETTLE.FIELDS)
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
