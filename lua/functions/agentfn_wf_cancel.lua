-- agentfn_wf_cancel: cancel a running workflow and the tasks of its unfinished steps.
--
-- Invariant: the workflow and every step that had not finished become canceled together, and
-- the task of each queued step is canceled as agentfn_task_cancel does (a running worker learns
-- it at its next extend or complete). Canceling a canceled workflow changes nothing.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] workflow_id: the workflow's id
-- returns: flat array: id, state (canceled), was (the previous state), canceled_steps
-- errors: BADARG, NOTFOUND, STATE (the workflow completed or failed), VERSION
-- events: workflow.canceled (with canceled_steps)
-- example: FCALL agentfn_wf_cancel 1 agentfn:{default} w1
local function agentfn_wf_cancel(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 1, 'workflow_id')
  local workflow_id = check_id(args[1], 'workflow_id')
  parse_options(args, 2, {})
  check_schema(root, namespace)
  local workflow = WF.existing(root, workflow_id)
  if workflow.state == WF_STATE.CANCELED then
    return {'id', workflow_id, 'state', WF_STATE.CANCELED, 'was', WF_STATE.CANCELED, 'canceled_steps', 0}
  end
  if workflow.state ~= WF_STATE.RUNNING then
    raise(ERR.STATE, 'workflow ' .. workflow_id .. ' already ' .. workflow.state)
  end

  local canceled = WF.close(root, workflow, WF_STATE.CANCELED, 'workflow canceled', now_ms())
  return {'id', workflow_id, 'state', WF_STATE.CANCELED, 'was', WF_STATE.RUNNING, 'canceled_steps', canceled}
end
