-- The library-wide guard: no raw Redis or Lua error ever reaches a caller, and no refusal after a
-- write goes unnoticed.
--
-- `redis` below shadows the global API table for every line of the library: its `call` notes the
-- first command of the current call that is not in CALL.READS (a write or a PUBLISH) before
-- passing it on. Its other fields pass on to the global's (the load-time sandbox has no
-- setmetatable, and the global is the load-time API while the library loads, the full one when
-- a function runs): the library uses only these four.
local CALL = {wrote = false}
CALL.READS = {EXISTS = true, GET = true, HGET = true, HGETALL = true, HMGET = true, HEXISTS = true,
  HLEN = true, LRANGE = true, LLEN = true, SMEMBERS = true, SISMEMBER = true, SCARD = true, TIME = true,
  TYPE = true, PTTL = true, PEXPIRETIME = true, XINFO = true, XLEN = true, XPENDING = true, XRANGE = true,
  XREVRANGE = true, ZRANGE = true, ZRANK = true, ZSCORE = true, ZCARD = true, ZCOUNT = true,
  MGET = true, SMISMEMBER = true}
local redis = {
  call = function(command, ...)
    if not CALL.wrote and not CALL.READS[command] then
      CALL.wrote = true
    end
    return redis.call(command, ...)
  end,
  error_reply = function(message) return redis.error_reply(message) end,
  sha1hex = function(text) return redis.sha1hex(text) end,
  register_function = function(spec) return redis.register_function(spec) end,
}

-- guard(callback): wrap a function so that raise() becomes redis.error_reply('<CODE> <message>')
-- without the script-location suffix Redis appends to errors. Any other error (a raw Redis or
-- Lua error: a defect), and a raise() after the call's first write (the library validates
-- everything before writing, so that too is a defect: Redis does not roll a function back), is
-- the coded error INTERNAL, saying whether something was written. An ACL refusal (NOPERM) of
-- a command before the first write keeps Redis's code: the user lacks a permission.
local function guard(callback)
  return function(keys, args)
    CALL.wrote = false
    local ok, result = pcall(callback, keys, args)
    if ok then
      return result
    end
    local coded = type(result) == 'table' and result.agentfn_code
    if coded and not CALL.wrote then
      return redis.error_reply(coded .. ' ' .. result.message)
    end
    local raw = type(result) == 'table' and result.err
    if not CALL.wrote and type(raw) == 'string' and string.find(raw, '^NOPERM ') then
      return redis.error_reply(raw) -- an ACL refusal before any write: Redis's own code
    end
    local detail = coded and (coded .. ' ' .. result.message) or (type(result) == 'table' and result.err)
      or result
    return redis.error_reply(ERR.INTERNAL .. ' internal defect, '
      .. (CALL.wrote and 'after a write (the call may be partly applied): ' or 'nothing was written: ')
      .. tostring(detail))
  end
end
