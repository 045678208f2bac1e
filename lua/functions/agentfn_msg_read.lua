-- agentfn_msg_read: read an agent's inbox: its unacknowledged messages first, then new ones.
--
-- Invariant: a message stays in the inbox, and comes back on every read, until the agent
-- acknowledges it (agentfn_msg_ack) or it expires, so a reader that dies or reconnects skips
-- nothing. A read returns first the messages delivered earlier and not acknowledged (the
-- consumer's pending entries, redelivered 1), then undelivered ones (redelivered 0), oldest
-- first, at most COUNT in all. Expired messages met on the way are removed and not returned.
-- When messages is empty, every message sent so far was handled: block with
-- XREAD BLOCK <ms> STREAMS <wait key> <wait id> (no lost wake-up: a message sent after this
-- read has a larger id) and read again. ACK acknowledges handled messages first (as
-- agentfn_msg_ack), saving a round trip per batch. Only the agent (its secret) reads its inbox;
-- it must be registered (a lapsed agent whose record is kept still may).
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] agent_id: the reader (the inbox owner, registered)
-- ARGV[2] secret: the secret it registered with
-- OPTION COUNT n: at most n messages, 1 to 200 (default 10)
-- OPTION ACK message_ids: comma-separated ids of messages to acknowledge before reading (1 to
--   200)
-- returns: flat: messages, [message, ...], wait, [inbox_key, last_id] (last_id: the inbox's
--   newest id, 0-0 when it is empty; when messages is not empty, the last message's id, from
--   which XREAD returns at once while more messages wait); each message flat: id,
--   to, from, type, content, reply_to, sent_ms, expires_ms, traceparent ('' when sent without
--   one), redelivered (1 when it was delivered before and not acknowledged)
-- errors: BADARG, LIMIT, NOTFOUND, DENIED, VERSION
-- example: FCALL agentfn_msg_read 1 agentfn:{default} researcher-1 5f0c6a1e9b2d4c7f8a3e1d0b9c8a7f6e COUNT 10 ACK 1718000000000-0
local function agentfn_msg_read(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 2, 'agent_id, secret')
  local agent_id = check_id(args[1], 'agent_id')
  local secret = check_secret(args[2])
  local options = parse_options(args, 3, {COUNT = OPT.count(LIMITS.message_batch), ACK = MSG.check_ids})
  check_schema(root, namespace)
  owned_agent(root, agent_id, secret)

  for _, id in ipairs(options.ACK or {}) do
    MSG.remove(root, agent_id, id)
  end
  local count = options.COUNT or 10
  local inbox = K.inbox(root, agent_id)
  local messages = {}
  if redis.call('EXISTS', inbox) == 1 then
    local now = now_ms()
    local cursor = '0'
    while cursor and #messages < count do
      local entries = MSG.read_group(inbox, agent_id, count - #messages, cursor)
      cursor = MSG.deliver(root, agent_id, entries, now, true, messages)
    end
    local more = true
    while more and #messages < count do
      local entries = MSG.read_group(inbox, agent_id, count - #messages, '>')
      more = MSG.deliver(root, agent_id, entries, now, false, messages) ~= nil
    end
  end
  local last_id = #messages > 0 and messages[#messages][2] or MSG.last_id(inbox)
  return {'messages', messages, 'wait', {inbox, last_id}}
end
