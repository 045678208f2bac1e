-- agentfn_ctx_get: a workflow's shared context document and its version.
--
-- Reads only. Every workflow has one context document (a JSON object), shared by its steps'
-- handlers and its orchestrator; the version counts the writes (0 until the first
-- agentfn_ctx_set), for compare-and-set.
--
-- flags: no-writes
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] workflow_id: the workflow's id
-- returns: flat array: workflow, document (JSON object), version
-- errors: BADARG, NOTFOUND, VERSION
-- example: FCALL_RO agentfn_ctx_get 1 agentfn:{default} w1
local function agentfn_ctx_get(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 1, 'workflow_id')
  local workflow_id = check_id(args[1], 'workflow_id')
  parse_options(args, 2, {})
  check_schema(root, namespace)
  local context = redis.call('HMGET', K.workflow(root, workflow_id), 'context', 'context_version')
  if not context[1] then
    raise(ERR.NOTFOUND, 'workflow ' .. workflow_id .. ' does not exist')
  end
  return {'workflow', workflow_id, 'document', context[1], 'version', context[2]}
end
