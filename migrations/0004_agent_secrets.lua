-- 0004_agent_secrets: protocol 3.0 (agent secrets, unguessable claim tokens) over a namespace
-- made by 2.0.
--
-- An agent registered before 3.0 has no secret_sha1: it can prove nothing, so it can neither
-- heartbeat nor claim, read or ack its inbox, nor deregister. Rather than leave it live (and its
-- id refused to a 3.0 process, DENIED) until its deadline, which may be days away, this migration
-- moves the liveness deadline of every live agent without secret_sha1 to the migration time: in
-- the live set, in each capability index it is in, and its record's expires_ms. Nothing else is
-- written: the library's own sweep (every register, heartbeat, claim and agentfn_reap runs it)
-- then lapses it as any agent past its deadline (marked lapsed, its indexes dropped, the tasks it
-- held handed back at once as a failed attempt 'agent <id> lapsed': queued again, or dead when
-- out of attempts, as on any lapse). A running task claimed before 3.0 has no token_sha1: no
-- token settles that attempt (DENIED); it comes back through that sweep, or through agentfn_reap
-- when its lease expires. Nothing is lost: every task is queued again or dead-lettered.
--
-- Works in batches of 500 agents (ZRANGE BYSCORE of the live set after the migration time,
-- skipping the agents that have a secret, counted in the meta hash) and returns 'more' until it
-- is done; idempotent (running it again finds no live agent without a secret).
--
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- returns: 'more' while batches remain, then 'done'
local root = KEYS[1]
local meta = root .. ':meta'
local agents = root .. ':agents'
local time = redis.call('TIME')
local now = string.format('%d', tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
local skipped = tonumber(redis.call('HGET', meta, 'migration_0004_skipped') or '0')
local batch = redis.call('ZRANGE', agents, '(' .. now, '+inf', 'BYSCORE', 'LIMIT', skipped, 500)
for _, agent_id in ipairs(batch) do
  local key = root .. ':agent:' .. agent_id
  local record = redis.call('HMGET', key, 'secret_sha1', 'capabilities')
  if record[1] then
    skipped = skipped + 1
  else
    redis.call('ZADD', agents, 'XX', now, agent_id)
    for capability in string.gmatch(record[2] or '', '[^,]+') do
      redis.call('ZADD', root .. ':cap:' .. capability, 'XX', now, agent_id)
    end
    if redis.call('EXISTS', key) == 1 then
      redis.call('HSET', key, 'expires_ms', now)
    end
  end
end
if #batch == 500 then
  redis.call('HSET', meta, 'migration_0004_skipped', skipped)
  return 'more'
end
redis.call('HDEL', meta, 'migration_0004_skipped')
return 'done'
