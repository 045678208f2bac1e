-- raise(code, message): abort the current function with the coded error `<code> <message>`.
-- Call it only before the first write: Redis does not roll a function back.
local function raise(code, message)
  error({agentfn_code = code, message = message}, 0)
end
