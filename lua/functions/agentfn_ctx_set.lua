-- agentfn_ctx_set: replace a workflow's shared context document, or merge fields into it.
--
-- Invariant: each write makes the version one higher; with EXPECT_VERSION the write happens only
-- if the version is still the expected one (compare-and-set), else CONFLICT and nothing changes.
-- MODE merge sets the top-level fields of the given object (a field given as null is removed)
-- and keeps the others; values are stored exactly as written.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] workflow_id: the workflow's id
-- ARGV[2] document: a JSON object: the new document (MODE set) or the fields to set (MODE merge);
--   at most 64 KiB, and so is the merged document
-- OPTION MODE set|merge: replace the document (default) or merge top-level fields into it
-- OPTION EXPECT_VERSION n: write only if the current version is n
-- returns: flat array: workflow, version (the new version)
-- errors: BADARG, CONFLICT, LIMIT, NOTFOUND, VERSION
-- events: context.updated
-- example: FCALL agentfn_ctx_set 1 agentfn:{default} w1 '{"draft":"v2"}' MODE merge EXPECT_VERSION 3
local function agentfn_ctx_set(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 2, 'workflow_id, document')
  local workflow_id = check_id(args[1], 'workflow_id')
  local document = args[2]
  check_json(document, 'document', 'object')
  if #document > LIMITS.context_bytes then
    raise(ERR.LIMIT, 'document is larger than ' .. LIMITS.context_bytes .. ' bytes')
  end
  local options = parse_options(args, 3, {
    MODE = function(value, name) return check_enum(value, name, {'set', 'merge'}) end,
    EXPECT_VERSION = function(value, name) return check_int(value, name, 0, 9007199254740991) end,
  })
  check_schema(root, namespace)
  local workflow_key = K.workflow(root, workflow_id)
  local context = redis.call('HMGET', workflow_key, 'context', 'context_version')
  if not context[1] then
    raise(ERR.NOTFOUND, 'workflow ' .. workflow_id .. ' does not exist')
  end
  local version = tonumber(context[2])
  if options.EXPECT_VERSION and options.EXPECT_VERSION ~= version then
    raise(ERR.CONFLICT, 'context of workflow ' .. workflow_id .. ' is at version ' .. version .. ', not '
      .. options.EXPECT_VERSION)
  end
  if options.MODE == 'merge' then
    document = WF.merge_objects(context[1], document)
    if #document > LIMITS.context_bytes then
      raise(ERR.LIMIT, 'the merged context would be larger than ' .. LIMITS.context_bytes .. ' bytes')
    end
  end

  version = version + 1
  redis.call('HSET', workflow_key, 'context', document, 'context_version', version)
  emit(root, 'context.updated', {'workflow', workflow_id, 'version', version})
  redis.call('PUBLISH', K.channel(root, 'wf:' .. workflow_id), 'context.updated ' .. version)
  return {'workflow', workflow_id, 'version', version}
end
