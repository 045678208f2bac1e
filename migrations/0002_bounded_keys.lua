-- 0002_bounded_keys: prepare a namespace for the library that bounds what it keeps (2.0.0).
--
-- 1. The trim index: every work stream of the namespace's `streams` set joins `trim` (a sorted
--    set by due time), so that agentfn_reap visits it once: it trims it, deletes it when unused
--    and watches the direct streams of departed agents (their tasks then follow the 'agent
--    gone' policy). From then on the reaper visits only the streams where work ended.
-- 2. Dead letters own their task records: the record of each task listed in `dead` that is
--    still dead under that entry loses its expiry (agentfn_reap deletes it with the entry), and
--    so does its idempotency key.
-- Works in batches of 500 (SSCAN, then XRANGE, each from a cursor kept in the meta hash) and
-- returns 'more' until it is done; idempotent (running it again adds nothing new).
--
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- returns: 'more' while batches remain, then 'done'
local root = KEYS[1]
local meta = root .. ':meta'
local batch = '500'
local time = redis.call('TIME')
local now = time[1] .. string.sub('00000' .. time[2], -6, -4)

local phase = redis.call('HGET', meta, 'migration_0002_phase') or 'streams'
if phase == 'streams' then
  local cursor = redis.call('HGET', meta, 'migration_0002_cursor') or '0'
  local reply = redis.call('SSCAN', root .. ':streams', cursor, 'COUNT', batch)
  for _, stream in ipairs(reply[2]) do
    redis.call('ZADD', root .. ':trim', 'NX', now, stream)
  end
  if reply[1] ~= '0' then
    redis.call('HSET', meta, 'migration_0002_cursor', reply[1])
    return 'more'
  end
  redis.call('HSET', meta, 'migration_0002_phase', 'dead', 'migration_0002_cursor', '-')
  return 'more'
end

local cursor = redis.call('HGET', meta, 'migration_0002_cursor') or '-'
local entries = redis.call('XRANGE', root .. ':dead', cursor, '+', 'COUNT', batch)
for _, entry in ipairs(entries) do
  local task_id = entry[2][2]
  local key = root .. ':task:' .. task_id
  local task = redis.call('HMGET', key, 'state', 'entry', 'idempotency_key')
  if task[1] == 'dead' and task[2] == entry[1] then
    redis.call('PERSIST', key)
    if task[3] and task[3] ~= '' then
      redis.call('PERSIST', root .. ':idem:' .. task[3])
    end
  end
end
if #entries == tonumber(batch) then
  redis.call('HSET', meta, 'migration_0002_cursor', '(' .. entries[#entries][1])
  return 'more'
end
redis.call('HDEL', meta, 'migration_0002_phase', 'migration_0002_cursor')
return 'done'
