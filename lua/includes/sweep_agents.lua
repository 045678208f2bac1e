-- drop_agent_indexes(root, agent_id, capabilities): remove an agent from the live set and from
-- every capability index it was in (`capabilities` is the stored comma-separated list).
local function drop_agent_indexes(root, agent_id, capabilities)
  redis.call('ZREM', K.agents(root), agent_id)
  for _, capability in ipairs(split_csv(capabilities or '')) do
    redis.call('ZREM', K.capability(root, capability), agent_id)
  end
end

-- sweep_lapsed_agents(root, now): every agent whose liveness deadline passed (up to a batch)
-- leaves the live set and every capability index, is marked lapsed, hands back its tasks
-- (release_agent_tasks), and its record expires after the namespace's agent_retention_ms (at
-- once when 0). Returns the list of swept agent ids and how many tasks they held.
local function sweep_lapsed_agents(root, now)
  local lapsed = redis.call('ZRANGE', K.agents(root), '-inf', now, 'BYSCORE', 'LIMIT', 0, LIMITS.sweep_batch)
  if #lapsed == 0 then
    return lapsed, 0
  end
  local retention_ms = CONFIG.duration(root, 'agent_retention_ms')
  local released = 0
  for _, agent_id in ipairs(lapsed) do
    local agent_key = K.agent(root, agent_id)
    drop_agent_indexes(root, agent_id, redis.call('HGET', agent_key, 'capabilities'))
    redis.call('HSET', agent_key, 'status', 'lapsed')
    released = released + release_agent_tasks(root, agent_id, now, 'agent ' .. agent_id .. ' lapsed')
    if retention_ms > 0 then
      redis.call('PEXPIRE', agent_key, retention_ms)
    else
      redis.call('DEL', agent_key)
    end
    emit(root, 'agent.lapsed', {'agent', agent_id})
  end
  return lapsed, released
end
