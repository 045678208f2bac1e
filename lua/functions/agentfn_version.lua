-- agentfn_version: report the deployed library and the namespace's schema.
--
-- Reads only. Clients call it (FCALL_RO) on first use to check that the library they expect is
-- deployed and that the namespace was migrated to the schema the library expects.
--
-- flags: no-writes
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- returns: flat array: library (version), code_sha (sha256 of the rendered source),
--   schema_version (the namespace's; 0 when never migrated), library_schema_version
--   (the schema this library expects)
-- errors: BADARG (wrong key)
-- example: FCALL_RO agentfn_version 1 agentfn:{default}
local function agentfn_version(keys, args)
  local root = check_root(keys)
  if #args ~= 0 then
    raise(ERR.BADARG, 'expected no arguments, got ' .. #args)
  end
  local schema = redis.call('HGET', K.meta(root), 'schema_version') or '0'
  return {'library', LIBRARY_VERSION, 'code_sha', CODE_SHA, 'schema_version', schema,
    'library_schema_version', tostring(SCHEMA_VERSION)}
end
