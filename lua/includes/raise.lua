-- raise(code, message): abort the current function with the coded error `<code> <message>`.
-- Call it only before the first write: Redis does not roll a function back.
local function raise(code, message)
  error({agentfn_code = code, message = message}, 0)
end

-- failure_code(failure): the code (NOGROUP, NOPERM...) of a Redis error that pcall caught from
-- redis.call, or nil: a table {err = '<CODE> ...'} or, on Redis 7.0, a string, which may start
-- with the script's location ('user_function:<line>: <CODE> ...').
local function failure_code(failure)
  local text = type(failure) == 'table' and failure.err or failure
  if type(text) ~= 'string' then
    return nil
  end
  return string.match(text, '^(%u+) ') or string.match(text, '^[^ ]-:%d+: (%u+) ')
end
