-- Record a namespace's new schema version after its migration NNNN returned 'done', only if the
-- namespace is still at NNNN - 1 (as agentfn's migration runner does).
-- KEYS[1] the namespace's meta hash, agentfn:{<namespace>}:meta; ARGV[1] NNNN as a number.
-- Sets schema_version in the meta hash and the schema key agentfn:{<namespace>}:schema.
-- returns 1 when recorded, 0 when the namespace was not at NNNN - 1.
local current = tonumber(redis.call('HGET', KEYS[1], 'schema_version') or '0')
if current == tonumber(ARGV[1]) - 1 then
  local time = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'schema_version', ARGV[1], 'migrated_ms',
    tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
  redis.call('SET', (string.gsub(KEYS[1], ':meta$', ':schema')), ARGV[1])
  return 1
end
return 0
