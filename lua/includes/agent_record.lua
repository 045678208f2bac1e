-- agent_reply(root, agent_id): an agent's record as a flat field/value array (HGETALL order is
-- not stable, so the fields are listed explicitly).
local AGENT_FIELDS = {'id', 'capabilities', 'metadata', 'status', 'ttl_ms', 'registered_ms',
  'heartbeat_ms', 'expires_ms'}
local function agent_reply(root, agent_id)
  return flat_reply(AGENT_FIELDS, redis.call('HMGET', K.agent(root, agent_id), unpack(AGENT_FIELDS)))
end

-- live_agent(root, agent_id, now): the agent's record table if it is registered and live;
-- raise()s NOTFOUND or LAPSED otherwise. No writes.
local function live_agent(root, agent_id, now)
  local record = redis.call('HMGET', K.agent(root, agent_id), 'status', 'expires_ms', 'capabilities', 'ttl_ms')
  if not record[1] then
    raise(ERR.NOTFOUND, 'agent ' .. agent_id .. ' is not registered')
  end
  if record[1] ~= 'live' or tonumber(record[2]) <= now then
    raise(ERR.LAPSED, 'agent ' .. agent_id .. ' lapsed: register it again')
  end
  return {status = record[1], expires_ms = tonumber(record[2]), capabilities = record[3] or '',
    ttl_ms = tonumber(record[4])}
end
