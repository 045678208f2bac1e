-- agentfn_agent_deregister: remove an agent for good.
--
-- Invariant: only the agent (its secret) deregisters itself. A deregistered agent is in no index, its record is deleted, every task it held is
-- handed back at once (not after its lease; up to 100, any more when their leases expire), and
-- it is a consumer of no group. Its direct
-- tasks wait their grace (GRACE_MS of agentfn_task_submit), then agentfn_reap dead-letters
-- them ('agent gone') and deletes its direct stream.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] agent_id: the agent's id
-- ARGV[2] secret: the secret it registered with
-- returns: flat array: agent (the id), released (how many tasks it held were handed back)
-- errors: BADARG, NOTFOUND, DENIED, VERSION
-- events: agent.deregistered
-- example: FCALL agentfn_agent_deregister 1 agentfn:{default} researcher-1 5f0c6a1e9b2d4c7f8a3e1d0b9c8a7f6e
local function agentfn_agent_deregister(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 2, 'agent_id, secret')
  local agent_id = check_id(args[1], 'agent_id')
  local secret = check_secret(args[2])
  parse_options(args, 3, {})
  check_schema(root, namespace)
  local agent_key = K.agent(root, agent_id)
  local capabilities = owned_agent(root, agent_id, secret).capabilities

  local now = now_ms()
  drop_agent_indexes(root, agent_id, capabilities)
  local released = release_agent_tasks(root, agent_id, now, 'agent ' .. agent_id .. ' deregistered',
    LIMITS.release_batch)
  redis.call('DEL', agent_key)
  emit(root, 'agent.deregistered', {'agent', agent_id})
  sweep_lapsed_agents(root, now)
  return {'agent', agent_id, 'released', released}
end
