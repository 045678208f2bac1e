-- guard(callback): wrap a function so that raise() becomes redis.error_reply('<CODE> <message>')
-- without the script-location suffix Redis appends to errors; other errors pass through (a
-- table without `err` is turned into a plain message first).
local function guard(callback)
  return function(keys, args)
    local ok, result = pcall(callback, keys, args)
    if ok then
      return result
    end
    if type(result) == 'table' and result.agentfn_code then
      return redis.error_reply(result.agentfn_code .. ' ' .. result.message)
    end
    if type(result) == 'table' and not result.err then
      -- Redis 7.0 crashes on a raised table without `err`: never let one escape.
      error('internal error in an agentfn function', 0)
    end
    error(result, 0)
  end
end
