-- now_ms(): the server's clock in milliseconds (TIME), the only clock the library trusts.
-- ms_text(ms): the decimal text of a whole number of milliseconds, for redis.call arguments
-- (redis.call converts a number argument with snprintf('%.17g') on every call, which is slow).
-- The clock's last reading is kept with its text, built from TIME's reply (text already), so
-- ms_text(now) costs a comparison; so is the last other time converted (a claim gives its tasks
-- the same lease deadline).
local CLOCK = {}
local function now_ms()
  local time = redis.call('TIME')
  local text = time[1] .. string.sub('00000' .. time[2], -6, -4)
  CLOCK.ms, CLOCK.text = tonumber(text), text
  return CLOCK.ms
end

local function ms_text(ms)
  if ms == CLOCK.ms then
    return CLOCK.text
  end
  if ms ~= CLOCK.other_ms then
    CLOCK.other_ms, CLOCK.other_text = ms, string.format('%d', ms)
  end
  return CLOCK.other_text
end
