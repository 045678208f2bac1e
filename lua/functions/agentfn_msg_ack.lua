-- agentfn_msg_ack: acknowledge messages: they leave the agent's inbox for good.
--
-- Invariant: an acknowledged message is in no pending list, no inbox and no expiry index
-- (XACK + XDEL + ZREM together), so it is never delivered again and stops counting toward the
-- inbox cap. Acknowledging an id that is no longer in the inbox is not an error (a retried ack
-- is harmless); the reply counts what was removed. Only the agent (its secret, registered)
-- acknowledges its messages.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] agent_id: the inbox owner (registered)
-- ARGV[2] secret: the secret it registered with
-- ARGV[3] message_ids: comma-separated message ids, 1 to 200
-- returns: flat: removed (how many of the ids were still in the inbox)
-- errors: BADARG, LIMIT, NOTFOUND, DENIED, VERSION
-- example: FCALL agentfn_msg_ack 1 agentfn:{default} researcher-1 5f0c6a1e9b2d4c7f8a3e1d0b9c8a7f6e 1718000000000-0,1718000000001-0
local function agentfn_msg_ack(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 3, 'agent_id, secret, message_ids')
  local agent_id = check_id(args[1], 'agent_id')
  local secret = check_secret(args[2])
  local ids = MSG.check_ids(args[3], 'message_ids')
  parse_options(args, 4, {})
  check_schema(root, namespace)
  owned_agent(root, agent_id, secret)

  local removed = 0
  for _, id in ipairs(ids) do
    removed = removed + MSG.remove(root, agent_id, id)
  end
  return {'removed', removed}
end
