-- agentfn_msg_broadcast: send one message to every live agent with a capability.
--
-- Invariant: each live agent (liveness deadline after the server clock at the call) that has
-- the capability, or every live agent for *, gets its own inbox entry and notification, all in
-- one call; the sender itself is left out. An agent whose inbox is full gets nothing and is
-- named in the reply, so the sender learns who was not reached. A broadcast reaches at most 250
-- agents (LIMITS.broadcast_recipients): with more live recipients it is refused with LIMIT
-- before anything is written (send to fewer, by capability, or one by one).
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] from: the sender's id (left out of the recipients)
-- ARGV[2] capability: a capability name, or * for every live agent
-- ARGV[3] type: the message type (an id)
-- ARGV[4] content: the message content, JSON text (at most 64 KiB)
-- OPTION TTL_MS ms: each message expires this long after sending (default 24 h)
-- OPTION TRACEPARENT traceparent: the W3C trace context of the sender's span (as
--   agentfn_task_submit's), stored with each message
-- returns: flat: reached, [agent_id, message_id, agent_id, message_id, ...] (soonest liveness
--   deadline first), full, [agent_id, ...] (agents whose inbox was full)
-- errors: BADARG, LIMIT, VERSION
-- events: message.broadcast (from, capability, message_type, reached, full); each recipient's inbox
--   channel gets its message id
-- example: FCALL agentfn_msg_broadcast 1 agentfn:{default} planner-1 web_search announce '{"text":"new plan"}'
local function agentfn_msg_broadcast(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 4, 'from, capability, type, content')
  local from = check_id(args[1], 'from')
  local capability = args[2]
  if capability ~= '*' then
    check_capability(capability, 'capability')
  end
  local kind = check_id(args[3], 'type')
  check_json(args[4], 'content')
  local options = parse_options(args, 5, {TTL_MS = OPT.positive_duration, TRACEPARENT = OPT.traceparent})
  check_schema(root, namespace)

  local now = now_ms()
  local index = capability == '*' and K.agents(root) or K.capability(root, capability)
  local live = redis.call('ZCOUNT', index, '(' .. now, '+inf')
  if live > LIMITS.broadcast_recipients + (redis.call('ZSCORE', index, from) and 1 or 0) then
    raise(ERR.LIMIT, 'a broadcast reaches at most ' .. LIMITS.broadcast_recipients .. ' agents; ' .. live
      .. ' are live' .. (capability == '*' and '' or ' with ' .. capability))
  end
  local message = {from = from, type = kind, content = args[4], reply_to = '', sent_ms = now,
    expires_ms = now + (options.TTL_MS or DEFAULTS.retention_ms), traceparent = options.TRACEPARENT}
  local reached, full = {}, {}
  for _, agent_id in ipairs(redis.call('ZRANGE', index, '(' .. now, '+inf', 'BYSCORE')) do
    if agent_id ~= from then
      if MSG.has_room(root, agent_id) then
        reached[#reached + 1] = agent_id
        reached[#reached + 1] = MSG.append(root, agent_id, message)
      else
        full[#full + 1] = agent_id
      end
    end
  end
  emit(root, 'message.broadcast', {'from', from, 'capability', capability, 'message_type', kind,
    'reached', #reached / 2, 'full', #full})
  return {'reached', reached, 'full', full}
end
