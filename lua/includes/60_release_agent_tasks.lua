-- release_agent_tasks(root, agent_id, now, reason): hand back every task an agent holds because
-- the agent is gone (lapsed or deregistered). Returns how many tasks were released.
-- The task routing transitions define what handing back means.
local function release_agent_tasks(root, agent_id, now, reason)
  return 0
end
