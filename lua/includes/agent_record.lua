-- agent_reply(root, agent_id): an agent's record as a flat field/value array (HGETALL order is
-- not stable, so the fields are listed explicitly; never the secret's hash, secret_sha1).
local AGENT_FIELDS = {'id', 'capabilities', 'metadata', 'status', 'ttl_ms', 'registered_ms',
  'heartbeat_ms', 'expires_ms'}
local function agent_reply(root, agent_id)
  return flat_reply(AGENT_FIELDS, redis.call('HMGET', K.agent(root, agent_id), unpack(AGENT_FIELDS)))
end

-- owned_agent(root, agent_id, secret): the agent's record table (status, expires_ms,
-- capabilities, ttl_ms) if it is registered and, when `secret` is given, sha1hex(secret) is its
-- stored secret_sha1 (an agent registered before 3.0 has none: it can prove nothing);
-- raise()s NOTFOUND or DENIED otherwise (naming the agent, never the secret). No writes.
local function owned_agent(root, agent_id, secret)
  local record = redis.call('HMGET', K.agent(root, agent_id), 'status', 'expires_ms', 'capabilities', 'ttl_ms',
    'secret_sha1')
  if not record[1] then
    raise(ERR.NOTFOUND, 'agent ' .. agent_id .. ' is not registered: register it first (an agent with no'
      .. ' capabilities takes only messages and direct tasks)')
  end
  if secret and record[5] ~= redis.sha1hex(secret) then
    raise(ERR.DENIED, 'agent ' .. agent_id .. ': the secret is not the one it registered with')
  end
  return {status = record[1], expires_ms = tonumber(record[2]), capabilities = record[3] or '',
    ttl_ms = tonumber(record[4])}
end

-- live_agent(root, agent_id, now, secret): the agent's record table (as owned_agent, which
-- checks `secret` when given) if it is also live; raise()s NOTFOUND, DENIED or LAPSED otherwise.
-- No writes.
local function live_agent(root, agent_id, now, secret)
  local agent = owned_agent(root, agent_id, secret)
  if agent.status ~= 'live' or agent.expires_ms <= now then
    raise(ERR.LAPSED, 'agent ' .. agent_id .. ' lapsed: register it again')
  end
  return agent
end
