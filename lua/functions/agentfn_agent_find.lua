-- agentfn_agent_find: the live agents that have a capability (or every live agent).
--
-- Reads only. Liveness is judged by the server clock at the call: an agent whose deadline has
-- passed is never returned, even before a sweep has removed it from the indexes.
--
-- flags: no-writes
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] capability: a capability name, or * for every live agent
-- OPTION LIMIT n: at most n agents, 1 to 500 (default 500)
-- returns: array of agent records, each flat (as agentfn_agent_register), soonest deadline first
-- errors: BADARG, VERSION
-- example: FCALL_RO agentfn_agent_find 1 agentfn:{default} web_search LIMIT 10
local function agentfn_agent_find(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 1, 'capability')
  local capability = args[1]
  if capability ~= '*' then
    check_capability(capability, 'capability')
  end
  local options = parse_options(args, 2, {LIMIT = OPT.count(LIMITS.find_count)})
  check_schema(root, namespace)

  local index = capability == '*' and K.agents(root) or K.capability(root, capability)
  local ids = redis.call('ZRANGE', index, '(' .. now_ms(), '+inf', 'BYSCORE', 'LIMIT', 0,
    options.LIMIT or LIMITS.find_count)
  local agents = {}
  for _, agent_id in ipairs(ids) do
    agents[#agents + 1] = agent_reply(root, agent_id)
  end
  return agents
end
