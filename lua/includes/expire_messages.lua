-- expire_messages(root, now, limit): up to `limit` messages whose expiry time has passed (read
-- or not) leave their inboxes and the expiry index. An inbox whose messages all expired may
-- already be gone (its key expires with its last message). Returns how many messages expired.
local function expire_messages(root, now, limit)
  local expired = redis.call('ZRANGE', K.message_expiry(root), '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  for _, member in ipairs(expired) do
    local agent_id, id = string.match(member, '^(%S+) (%S+)$')
    if agent_id then
      MSG.remove(root, agent_id, id)
    else
      redis.call('ZREM', K.message_expiry(root), member)
    end
  end
  return #expired
end
