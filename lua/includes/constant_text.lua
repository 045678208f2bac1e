-- constant_text(value): the decimal text of a whole-number constant (a DEFAULTS or LIMITS value),
-- converted once per library load and kept (the load-time sandbox has no tostring), for
-- redis.call arguments: redis.call converts a number argument with snprintf on every call.
local CONSTANT_TEXT = {}
local function constant_text(value)
  local text = CONSTANT_TEXT[value]
  if not text then
    text = string.format('%d', value)
    CONSTANT_TEXT[value] = text
  end
  return text
end
