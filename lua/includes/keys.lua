-- K: key names derived from the namespace root `agentfn:{<ns>}` (twin of agentfn/keys.py).
-- Every key shares the root's hash tag, so a namespace lives in one cluster slot.
local K = {}
function K.meta(root) return root .. ':meta' end
function K.schema(root) return root .. ':schema' end
function K.reap_lock(root) return root .. ':reap-lock' end
function K.agent(root, agent_id) return root .. ':agent:' .. agent_id end
function K.agent_tasks(root, agent_id) return root .. ':agent:' .. agent_id .. ':tasks' end -- before 2.0 only
function K.agents(root) return root .. ':agents' end
function K.lapsed(root) return root .. ':lapsed' end
function K.capability(root, capability) return root .. ':cap:' .. capability end
function K.task(root, task_id) return root .. ':task:' .. task_id end
function K.queue(root, capability, priority) return root .. ':queue:' .. capability .. ':' .. priority end
function K.direct(root, agent_id) return root .. ':direct:' .. agent_id end
function K.delayed(root) return root .. ':delayed' end
function K.delayed_wake(root) return root .. ':delayed-wake' end
function K.streams(root) return root .. ':streams' end
function K.trim(root) return root .. ':trim' end
function K.orphans(root) return root .. ':orphans' end
function K.orphans_since(root) return root .. ':orphans-since' end
function K.leases(root) return root .. ':leases' end
function K.dead(root) return root .. ':dead' end
function K.idempotency(root, key) return root .. ':idem:' .. key end
function K.events(root) return root .. ':events' end
function K.inbox(root, agent_id) return root .. ':inbox:' .. agent_id end
function K.message_expiry(root) return root .. ':msg-expiry' end
function K.inboxes(root) return root .. ':inboxes' end
function K.workflows(root, state) return root .. ':workflows:' .. state end
function K.workflow_expiry(root) return root .. ':wf-expiry' end
function K.workflow(root, workflow_id) return root .. ':wf:' .. workflow_id end
function K.workflow_steps(root, workflow_id) return root .. ':wf:' .. workflow_id .. ':steps' end
function K.workflow_step(root, workflow_id, step_id) return root .. ':wf:' .. workflow_id .. ':step:' .. step_id end
function K.workflow_unmet(root, workflow_id) return root .. ':wf:' .. workflow_id .. ':unmet' end
function K.channel(root, topic) return root .. ':notify:' .. topic end
