-- agentfn_agent_heartbeat: extend a live agent's liveness.
--
-- Invariant: only the agent (its secret) can extend its liveness, and only while it is live; a lapsed agent gets LAPSED and must
-- register again (its tasks were handed back when it lapsed). The new deadline is the server
-- clock plus the TTL, written to the live set and to every capability index together.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] agent_id: the agent's id
-- ARGV[2] secret: the secret it registered with
-- OPTION TTL_MS ms: a new liveness time to live in ms (default: the registered one)
-- returns: the agent record, flat (as agentfn_agent_register)
-- errors: BADARG, NOTFOUND, DENIED, LAPSED, VERSION
-- example: FCALL agentfn_agent_heartbeat 1 agentfn:{default} researcher-1 5f0c6a1e9b2d4c7f8a3e1d0b9c8a7f6e
local function agentfn_agent_heartbeat(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 2, 'agent_id, secret')
  local agent_id = check_id(args[1], 'agent_id')
  local secret = check_secret(args[2])
  local options = parse_options(args, 3, {TTL_MS = OPT.positive_duration})
  check_schema(root, namespace)
  local now = now_ms()
  local agent = live_agent(root, agent_id, now, secret)

  local ttl_ms = options.TTL_MS or agent.ttl_ms
  local expires_ms = now + ttl_ms
  redis.call('HSET', K.agent(root, agent_id), 'heartbeat_ms', now, 'expires_ms', expires_ms, 'ttl_ms', ttl_ms)
  redis.call('ZADD', K.agents(root), expires_ms, agent_id)
  for _, capability in ipairs(split_csv(agent.capabilities)) do
    redis.call('ZADD', K.capability(root, capability), expires_ms, agent_id)
  end
  sweep_lapsed_agents(root, now)
  return agent_reply(root, agent_id)
end
