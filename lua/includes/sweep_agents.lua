-- drop_agent_indexes(root, agent_id, capabilities): remove an agent from the live set and from
-- every capability index it was in (`capabilities` is the stored comma-separated list).
local function drop_agent_indexes(root, agent_id, capabilities)
  redis.call('ZREM', K.agents(root), agent_id)
  for _, capability in ipairs(split_csv(capabilities or '')) do
    redis.call('ZREM', K.capability(root, capability), agent_id)
  end
end

-- sweep_lapsed_agents(root, now): every agent whose liveness deadline passed (up to a batch)
-- leaves the live set and every capability index, is marked lapsed, expires after the retention
-- time, and hands back its tasks. Returns the list of swept agent ids.
local function sweep_lapsed_agents(root, now)
  local lapsed = redis.call('ZRANGE', K.agents(root), '-inf', now, 'BYSCORE', 'LIMIT', 0, LIMITS.sweep_batch)
  for _, agent_id in ipairs(lapsed) do
    local agent_key = K.agent(root, agent_id)
    drop_agent_indexes(root, agent_id, redis.call('HGET', agent_key, 'capabilities'))
    redis.call('HSET', agent_key, 'status', 'lapsed')
    redis.call('PEXPIRE', agent_key, DEFAULTS.retention_ms)
    release_agent_tasks(root, agent_id, now, 'agent ' .. agent_id .. ' lapsed')
    emit(root, 'agent.lapsed', {'agent', agent_id})
  end
  return lapsed
end
