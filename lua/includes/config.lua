-- CONFIG: the namespace's settings, set by an operator in the meta hash
-- (HSET agentfn:{<ns>}:meta <name> <ms>); a missing or malformed value means DEFAULTS[name].
-- Read, never written, by the library: agent_retention_ms (how long a lapsed agent's record is
-- kept) and dead_retention_ms (how long a dead letter and its task's record are kept).
local CONFIG = {}

-- CONFIG.duration(root, name): the namespace's value of a duration setting (ms, 0 to
-- LIMITS.duration_ms), else its default.
function CONFIG.duration(root, name)
  local value = redis.call('HGET', K.meta(root), name)
  local number = value and string.find(value, '^%d+$') and #value <= 16 and tonumber(value)
  if number and number <= LIMITS.duration_ms then
    return number
  end
  return DEFAULTS[name]
end
