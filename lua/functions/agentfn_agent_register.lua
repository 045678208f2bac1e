-- agentfn_agent_register: register an agent, or register it again, with its capabilities.
--
-- Invariant: an agent is in the live set and in the index of each of its capabilities exactly
-- while its record says live and its liveness deadline (server clock + TTL) is in the future.
-- Registering again replaces capabilities (dropped ones leave their indexes, and the agent
-- leaves their streams' consumer groups once it holds no task of them), metadata and TTL, and
-- revives a lapsed agent (its direct tasks are no longer orphans'). Lapsed agents found on the
-- way are swept from every index.
-- Ownership: an id is owned by the secret it registered with while it is live. A live agent
-- registers again only with that secret (else DENIED, nothing changes); an agent with no record,
-- or not live (lapsed, or past its deadline), registers with the secret given (a new process of
-- a lapsed agent may bring a new secret). Only sha1hex(secret) is stored, never the secret, and
-- the reply has neither.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] agent_id: the agent's id (letters, digits, _ . - @; at most 128 bytes)
-- ARGV[2] secret: the agent's secret, 32 to 128 bytes of letters, digits, _ - chosen by the
--   caller with at least 128 bits of entropy (e.g. 32 random hex digits)
-- ARGV[3] capabilities: comma-separated capability names (letters, digits, _ . -); may be
--   empty for an agent that takes only direct tasks and messages
-- OPTION TTL_MS ms: liveness time to live in ms, 1 to 365 days (default 30000)
-- OPTION METADATA json: free-form JSON object stored with the agent (default {})
-- returns: the agent record, flat: id, capabilities, metadata, status (live), ttl_ms,
--   registered_ms, heartbeat_ms, expires_ms
-- errors: BADARG, LIMIT, DENIED (live under another secret), VERSION
-- events: agent.registered
-- example: FCALL agentfn_agent_register 1 agentfn:{default} researcher-1 5f0c6a1e9b2d4c7f8a3e1d0b9c8a7f6e web_search,summarize TTL_MS 30000 METADATA '{"host":"h1"}'

-- leave_dropped_streams(root, agent_id, kept, previous, lingering): the agent's consumers leave
-- the groups of the streams of each capability it drops (in `previous` or `lingering`, the
-- stored lists, and not in the set `kept`), and those streams join the trim index; a
-- capability of which it still holds a task (a pending entry) lingers until it departs. Returns
-- the new lingering list, comma-separated.
local function leave_dropped_streams(root, agent_id, kept, previous, lingering)
  local still, done = {}, {}
  for _, list in ipairs({previous or '', lingering or ''}) do
    for _, capability in ipairs(split_csv(list)) do
      if not kept[capability] and not done[capability] then
        done[capability] = true
        local holds = false
        for _, priority in ipairs(PRIORITIES) do
          local stream = K.queue(root, capability, priority)
          if redis.call('EXISTS', stream) == 1 then
            if #redis.call('XPENDING', stream, GROUP, '-', '+', '1', agent_id) > 0 then
              holds = true
            else
              redis.call('XGROUP', 'DELCONSUMER', stream, GROUP, agent_id)
              TASK.mark_trim(root, stream)
            end
          end
        end
        if holds then
          still[#still + 1] = capability
        end
      end
    end
  end
  return table.concat(still, ',')
end

local function agentfn_agent_register(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 3, 'agent_id, secret, capabilities')
  local agent_id = check_id(args[1], 'agent_id')
  local secret_sha1 = redis.sha1hex(check_secret(args[2]))
  if string.find(args[3], ',,') or string.find(args[3], '^,') or string.find(args[3], ',$') then
    raise(ERR.BADARG, 'capabilities must be a comma-separated list without empty items')
  end
  local capabilities, seen = {}, {}
  for _, capability in ipairs(split_csv(args[3])) do
    check_capability(capability, 'capability')
    if not seen[capability] then
      seen[capability] = true
      capabilities[#capabilities + 1] = capability
    end
  end
  if #capabilities > LIMITS.capabilities_per_agent then
    raise(ERR.LIMIT, 'an agent may have at most ' .. LIMITS.capabilities_per_agent .. ' capabilities')
  end
  local options = parse_options(args, 4, {TTL_MS = OPT.positive_duration, METADATA = OPT.object})
  check_schema(root, namespace)
  local now = now_ms()
  local agent_key = K.agent(root, agent_id)
  local owner = redis.call('HMGET', agent_key, 'status', 'expires_ms', 'secret_sha1')
  if owner[1] == 'live' and tonumber(owner[2]) > now and owner[3] ~= secret_sha1 then
    raise(ERR.DENIED, 'agent ' .. agent_id .. ' is live under another secret until ' .. owner[2]
      .. ' (its liveness deadline, ms): wait for it to lapse, or deregister it with its secret')
  end

  sweep_lapsed_agents(root, now)
  local previous = redis.call('HMGET', agent_key, 'capabilities', 'registered_ms', 'status', 'lingering')
  for _, capability in ipairs(split_csv(previous[1] or '')) do
    if not seen[capability] then
      redis.call('ZREM', K.capability(root, capability), agent_id)
    end
  end
  local lingering = leave_dropped_streams(root, agent_id, seen, previous[1], previous[4])
  local ttl_ms = options.TTL_MS or DEFAULTS.agent_ttl_ms
  local expires_ms = now + ttl_ms
  local registered_ms = (previous[3] == 'live' and previous[2]) or now
  redis.call('HSET', agent_key, 'id', agent_id, 'capabilities', table.concat(capabilities, ','),
    'metadata', options.METADATA or '{}', 'status', 'live', 'ttl_ms', ttl_ms,
    'registered_ms', registered_ms, 'heartbeat_ms', now, 'expires_ms', expires_ms, 'lingering', lingering,
    'secret_sha1', secret_sha1)
  -- back (or new): its direct stream is no orphan's
  redis.call('ZREM', K.orphans(root), agent_id)
  redis.call('HDEL', K.orphans_since(root), agent_id)
  redis.call('PERSIST', agent_key)
  redis.call('ZREM', K.lapsed(root), agent_id)
  redis.call('ZADD', K.agents(root), expires_ms, agent_id)
  for _, capability in ipairs(capabilities) do
    redis.call('ZADD', K.capability(root, capability), expires_ms, agent_id)
  end
  emit(root, 'agent.registered', {'agent', agent_id, 'capabilities', table.concat(capabilities, ',')})
  return agent_reply(root, agent_id)
end
