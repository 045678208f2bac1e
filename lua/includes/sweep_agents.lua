-- drop_agent_indexes(root, agent_id, capabilities): remove an agent from the live set, the
-- lapsed set and every capability index it was in (`capabilities` is the stored
-- comma-separated list).
local function drop_agent_indexes(root, agent_id, capabilities)
  redis.call('ZREM', K.agents(root), agent_id)
  redis.call('ZREM', K.lapsed(root), agent_id)
  for _, capability in ipairs(split_csv(capabilities or '')) do
    redis.call('ZREM', K.capability(root, capability), agent_id)
  end
end

-- sweep_lapsed_agents(root, now, budget): every agent whose liveness deadline passed (up to
-- LIMITS.sweep_batch, and while `budget` (default LIMITS.sweep_batch) covers the agent, 1, and
-- each of its tasks, 1; the first is swept whatever it holds) leaves the live set and every
-- capability index, is marked lapsed, hands back its tasks (release_agent_tasks: any beyond
-- the budget of the first come back when their leases expire), and its record expires after
-- the namespace's agent_retention_ms (at once when 0), listed meanwhile in K.lapsed scored by
-- that expiry time (agentfn_reap drops it from there once it passed). Returns the list of swept
-- agent ids and how many tasks they handed back.
local function sweep_lapsed_agents(root, now, budget)
  budget = budget or LIMITS.sweep_batch
  local lapsed = redis.call('ZRANGE', K.agents(root), '-inf', now, 'BYSCORE', 'LIMIT', 0,
    math.min(LIMITS.sweep_batch, budget))
  if #lapsed == 0 then
    return lapsed, 0
  end
  local retention_ms = CONFIG.duration(root, 'agent_retention_ms')
  local released, swept = 0, {}
  for index, agent_id in ipairs(lapsed) do
    -- the first agent is always swept (its tasks beyond the budget come back with their leases);
    -- the others only while the budget covers them and all of their tasks
    if index > 1
        and 1 + #SETTLE.held_tasks(root, agent_id, SETTLE.agent_streams(root, agent_id), budget) > budget then
      break
    end
    budget = budget - 1
    swept[#swept + 1] = agent_id
    local agent_key = K.agent(root, agent_id)
    drop_agent_indexes(root, agent_id, redis.call('HGET', agent_key, 'capabilities'))
    redis.call('HSET', agent_key, 'status', 'lapsed')
    local count = release_agent_tasks(root, agent_id, now, 'agent ' .. agent_id .. ' lapsed', math.max(budget, 0))
    released, budget = released + count, budget - count
    if retention_ms > 0 then
      redis.call('PEXPIREAT', agent_key, now + retention_ms)
      redis.call('ZADD', K.lapsed(root), now + retention_ms, agent_id)
    else
      redis.call('DEL', agent_key)
    end
    emit(root, 'agent.lapsed', {'agent', agent_id})
  end
  return swept, released
end
