-- agentfn_msg_send: send a message to one agent's durable inbox.
--
-- Invariant: a message is in its recipient's inbox stream (the entry id is the message id) and
-- in the expiry index until it is acknowledged or expires; the recipient is notified on its
-- inbox channel in the same call. An inbox holding the maximum number of unacknowledged
-- messages refuses new ones with LIMIT: nothing unread is ever trimmed. A recipient that was
-- never registered is refused unless ALLOW_UNREGISTERED yes; a lapsed agent whose record still
-- exists receives (its inbox outlives its liveness).
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] from: the sender's id (any id; the sender need not be a registered agent)
-- ARGV[2] to: the recipient agent's id
-- ARGV[3] type: the message type, an id such as chat or review.request
-- ARGV[4] content: the message content, JSON text (at most 64 KiB)
-- OPTION REPLY_TO message_id: the id of the message this one answers
-- OPTION TTL_MS ms: the message expires this long after sending (default 24 h): it is then
--   skipped by reads and removed by agentfn_reap
-- OPTION ALLOW_UNREGISTERED yes|no: deliver even when no record of the recipient exists
--   (default no)
-- OPTION TRACEPARENT traceparent: the W3C trace context of the sender's span (as
--   agentfn_task_submit's), stored with the message and returned by agentfn_msg_read
-- returns: flat: id (the message id), expires_ms
-- errors: BADARG, NOTFOUND, LIMIT, VERSION
-- events: message.sent (message, from, to, message_type); publishes the message id on
--   agentfn:{<ns>}:notify:inbox:<to>
-- example: FCALL agentfn_msg_send 1 agentfn:{default} planner-1 researcher-1 question '{"text":"ready?"}' TTL_MS 60000
local function agentfn_msg_send(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 4, 'from, to, type, content')
  local from = check_id(args[1], 'from')
  local to = check_id(args[2], 'to')
  local kind = check_id(args[3], 'type')
  check_json(args[4], 'content')
  local options = parse_options(args, 5, {REPLY_TO = MSG.check_id, TTL_MS = OPT.positive_duration,
    ALLOW_UNREGISTERED = OPT.yes_no, TRACEPARENT = OPT.traceparent})
  check_schema(root, namespace)
  if not options.ALLOW_UNREGISTERED and redis.call('EXISTS', K.agent(root, to)) == 0 then
    raise(ERR.NOTFOUND, 'agent ' .. to .. ' is not registered (ALLOW_UNREGISTERED yes sends anyway)')
  end
  MSG.check_room(root, to)

  local now = now_ms()
  local expires_ms = now + (options.TTL_MS or DEFAULTS.retention_ms)
  local id = MSG.append(root, to, {from = from, type = kind, content = args[4],
    reply_to = options.REPLY_TO or '', sent_ms = now, expires_ms = expires_ms,
    traceparent = options.TRACEPARENT})
  emit(root, 'message.sent', {'message', id, 'from', from, 'to', to, 'message_type', kind})
  return {'id', id, 'expires_ms', expires_ms}
end
