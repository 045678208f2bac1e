-- 0001_init: initialise a namespace.
--
-- Creates the namespace's meta hash with its creation time. Idempotent: running it again
-- changes nothing. The runner (agentfn/migrate.py) records schema_version 1 afterwards.
--
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- returns: 'done' (a migration that works in batches returns 'more' until it is done)
local meta = KEYS[1] .. ':meta'
local time = redis.call('TIME')
redis.call('HSETNX', meta, 'created_ms', tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
return 'done'
