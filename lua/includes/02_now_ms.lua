-- now_ms(): the server's clock in milliseconds (TIME), the only clock the library trusts.
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
