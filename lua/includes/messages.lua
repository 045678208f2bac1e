-- MSG: inbox helpers for the message transitions (agentfn_msg_*) and the reaper.
--
-- An inbox is the stream K.inbox(root, agent_id) with the consumer group GROUP (consumer = the
-- agent id); the stream entry id is the message id. Every message also sits in the sorted set
-- K.message_expiry(root) as '<agent_id> <message_id>' scored by its expiry time, so the reaper
-- finds expired messages without scanning inboxes. Acknowledged and expired messages leave the
-- inbox (XACK + XDEL + ZREM), so XLEN counts exactly the unread and the read-but-unacknowledged.
-- The inbox key itself expires with its last message; K.inboxes lists every inbox scored by
-- that expiry time (agentfn_reap drops the members whose time has passed).
local MSG = {}

-- The fields of an inbox entry, in the order a message is returned (after id).
MSG.FIELDS = {'from', 'type', 'content', 'reply_to', 'sent_ms', 'expires_ms', 'traceparent'}

-- MSG.check_id(value, what): a stream entry id '<ms>-<seq>' (the form of every message id), as
-- Redis writes it: each part a decimal without leading zeros within 64 bits (so that XACK and
-- XDEL cannot refuse it).
function MSG.check_id(value, what)
  local ms, seq
  if type(value) == 'string' and #value <= 41 then
    ms, seq = string.match(value, '^(%d+)%-(%d+)$')
  end
  if not (ms and MSG.is_uint64(ms) and MSG.is_uint64(seq)) then
    raise(ERR.BADARG, what .. ' must be a message id <ms>-<seq>, got ' .. quoted(value))
  end
  return value
end

-- MSG.is_uint64(digits): the decimal digits are 0 or start with 1-9, and are at most 2^64 - 1.
function MSG.is_uint64(digits)
  if #digits > 1 and string.byte(digits) == 48 then
    return false
  end
  return #digits < 20 or (#digits == 20 and digits <= '18446744073709551615')
end

-- MSG.check_ids(text, what): a comma-separated list of message ids without empty items.
function MSG.check_ids(text, what)
  if text == '' or string.find(text, ',,') or string.find(text, '^,') or string.find(text, ',$') then
    raise(ERR.BADARG, what .. ' must be a comma-separated list of message ids without empty items')
  end
  local ids = split_csv(text)
  if #ids > LIMITS.message_batch then
    raise(ERR.LIMIT, 'at most ' .. LIMITS.message_batch .. ' message ids at once')
  end
  for _, id in ipairs(ids) do
    MSG.check_id(id, what)
  end
  return ids
end

-- MSG.check_room(root, agent_id): raise LIMIT when the inbox holds DEFAULTS.inbox_max messages.
-- No writes: the cap refuses the sender, it never trims a message that is still unread.
function MSG.check_room(root, agent_id)
  if not MSG.has_room(root, agent_id) then
    raise(ERR.LIMIT, 'inbox of ' .. agent_id .. ' is full (' .. DEFAULTS.inbox_max
      .. ' unacknowledged messages)')
  end
end

-- MSG.has_room(root, agent_id): true while the inbox holds fewer than DEFAULTS.inbox_max messages.
function MSG.has_room(root, agent_id)
  return redis.call('XLEN', K.inbox(root, agent_id)) < DEFAULTS.inbox_max
end

-- MSG.append(root, to, message): add a message to an inbox (creating the stream and its group
-- at '0' when new), index its expiry, keep the inbox key alive until its last message expires,
-- and publish the message id on the inbox's channel. `message` holds from, type, content,
-- reply_to, sent_ms, expires_ms and optionally traceparent (an entry field only when given).
-- Returns the message id.
function MSG.append(root, to, message)
  local inbox = K.inbox(root, to)
  local fresh = redis.call('EXISTS', inbox) == 0
  if fresh then
    redis.call('XGROUP', 'CREATE', inbox, GROUP, '0', 'MKSTREAM')
  end
  local id
  if message.traceparent then
    id = redis.call('XADD', inbox, '*', 'from', message.from, 'type', message.type,
      'content', message.content, 'reply_to', message.reply_to, 'sent_ms', message.sent_ms,
      'expires_ms', message.expires_ms, 'traceparent', message.traceparent)
  else
    id = redis.call('XADD', inbox, '*', 'from', message.from, 'type', message.type,
      'content', message.content, 'reply_to', message.reply_to, 'sent_ms', message.sent_ms,
      'expires_ms', message.expires_ms)
  end
  redis.call('ZADD', K.message_expiry(root), message.expires_ms, to .. ' ' .. id)
  -- the inbox index (K.inboxes) holds each inbox scored by the key's own expiry time
  if fresh then
    redis.call('PEXPIREAT', inbox, message.expires_ms)
    redis.call('ZADD', K.inboxes(root), message.expires_ms, to)
  else
    redis.call('PEXPIREAT', inbox, message.expires_ms, 'GT')
    redis.call('ZADD', K.inboxes(root), 'GT', message.expires_ms, to)
  end
  redis.call('PUBLISH', K.channel(root, 'inbox:' .. to), id)
  return id
end

-- MSG.remove(root, agent_id, id): take a message out of an inbox for good (acknowledged or
-- expired). Returns 1 when the entry was still in the inbox, 0 otherwise.
function MSG.remove(root, agent_id, id)
  local inbox = K.inbox(root, agent_id)
  redis.call('XACK', inbox, GROUP, id)
  redis.call('ZREM', K.message_expiry(root), agent_id .. ' ' .. id)
  return redis.call('XDEL', inbox, id)
end

-- MSG.deliver(root, agent_id, entries, now, redelivered, messages): append each stream entry
-- (from XREADGROUP) to `messages` as a flat record, unless it expired or was deleted: those are
-- removed from the inbox and skipped. Returns the id of the last entry seen (nil when none).
function MSG.deliver(root, agent_id, entries, now, redelivered, messages)
  local last
  for _, entry in ipairs(entries) do
    last = entry[1]
    local fields = entry[2] and hash_to_table(entry[2])
    if not fields or (tonumber(fields.expires_ms) or 0) <= now then
      MSG.remove(root, agent_id, entry[1])
    else
      local record = {'id', entry[1], 'to', agent_id}
      for _, field in ipairs(MSG.FIELDS) do
        record[#record + 1] = field
        record[#record + 1] = fields[field] or ''
      end
      record[#record + 1] = 'redelivered'
      record[#record + 1] = redelivered and 1 or 0
      messages[#messages + 1] = record
    end
  end
  return last
end

-- MSG.read_group(inbox, agent_id, count, from_id): XREADGROUP without blocking; the entries
-- (an empty list when there are none).
function MSG.read_group(inbox, agent_id, count, from_id)
  local reply = redis.call('XREADGROUP', 'GROUP', GROUP, agent_id, 'COUNT', count, 'STREAMS', inbox, from_id)
  return (reply and reply[1] and reply[1][2]) or {}
end

-- MSG.last_id(inbox): the id of the inbox's newest entry, '0-0' when it is empty or missing.
function MSG.last_id(inbox)
  local newest = redis.call('XREVRANGE', inbox, '+', '-', 'COUNT', 1)
  return (newest[1] and newest[1][1]) or '0-0'
end
