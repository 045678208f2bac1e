-- raise(code, message): abort the current function with the coded error `<code> <message>`.
-- Call it only before the first write: Redis does not roll a function back.
local function raise(code, message)
  error({agentfn_code = code, message = message}, 0)
end

-- failure_code(failure): the code (NOGROUP, NOPERM...) of a Redis error that pcall caught from
-- redis.call, or nil: a table {err = '<CODE> ...'} on Redis 7.2 and later, a string on 7.0.
local function failure_code(failure)
  local text = type(failure) == 'table' and failure.err or failure
  return type(text) == 'string' and string.match(text, '^(%u+) ') or nil
end
