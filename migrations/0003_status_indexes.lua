-- 0003_status_indexes: build the status indexes of a namespace made before them (2.0.0), so that
-- `agentfn status` and the views read them instead of scanning the namespace.
--
-- 1. Lapsed agents: each agent record that is not in the live set `agents` joins `lapsed`,
--    scored by the record's expiry time (+inf when it has none).
-- 2. Inboxes: each inbox stream joins `inboxes`, scored by the key's expiry time.
-- 3. Workflows: each workflow record joins `workflows:<state>` scored by its created_ms; a
--    finished one also joins `wf-expiry` as '<state> <id>' scored by its expiry time.
-- The library keeps them in step from then on (and agentfn_reap drops the members whose keys
-- expired). Works in batches (SCAN of one key family, COUNT 500, from a cursor kept in the meta
-- hash) and returns 'more' until it is done; idempotent (running it again changes nothing).
--
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- returns: 'more' while batches remain, then 'done'
local root = KEYS[1]
local meta = root .. ':meta'
local phases = {'agent', 'inbox', 'wf'}
local kinds = {agent = 'hash', inbox = 'stream', wf = 'hash'}

-- The time the key expires (ms), '+inf' when it does not; nil when it is gone.
local function expiry(key)
  local at = redis.call('PEXPIRETIME', key)
  if at == -2 then
    return nil
  end
  return at == -1 and '+inf' or at
end

-- Add the id to a sorted-set index scored by the key's expiry time (when the key still exists).
local function index_by_expiry(index, id, key)
  local at = expiry(key)
  if at then
    redis.call('ZADD', index, at, id)
  end
end

local function index_agent(agent_id, key)
  if not redis.call('ZSCORE', root .. ':agents', agent_id) then
    index_by_expiry(root .. ':lapsed', agent_id, key)
  end
end

local function index_inbox(agent_id, key)
  index_by_expiry(root .. ':inboxes', agent_id, key)
end

local function index_workflow(workflow_id, key)
  if string.find(workflow_id, ':', 1, true) then
    return -- a workflow's sub-key (steps, step, unmet)
  end
  local record = redis.call('HMGET', key, 'state', 'created_ms')
  local state = record[1]
  if not state or not string.match(state, '^[%w_.-]+$') then
    return
  end
  redis.call('ZADD', root .. ':workflows:' .. state, tonumber(record[2]) or 0, workflow_id)
  if state ~= 'running' then
    index_by_expiry(root .. ':wf-expiry', state .. ' ' .. workflow_id, key)
  end
end

local index = {agent = index_agent, inbox = index_inbox, wf = index_workflow}
local phase = redis.call('HGET', meta, 'migration_0003_phase') or phases[1]
local cursor = redis.call('HGET', meta, 'migration_0003_cursor') or '0'
local prefix = root .. ':' .. phase .. ':'
local reply = redis.call('SCAN', cursor, 'MATCH', prefix .. '*', 'COUNT', '500', 'TYPE', kinds[phase])
for _, key in ipairs(reply[2]) do
  index[phase](string.sub(key, #prefix + 1), key)
end
if reply[1] ~= '0' then
  redis.call('HSET', meta, 'migration_0003_cursor', reply[1])
  return 'more'
end
for position, name in ipairs(phases) do
  if name == phase and phases[position + 1] then
    redis.call('HSET', meta, 'migration_0003_phase', phases[position + 1], 'migration_0003_cursor', '0')
    return 'more'
  end
end
redis.call('HDEL', meta, 'migration_0003_phase', 'migration_0003_cursor')
return 'done'
