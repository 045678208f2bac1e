-- agentfn_reap: the periodic cleanup: due delayed tasks, expired leases, lapsed agents.
--
-- Invariant: after a reap no delayed task is overdue, no running task holds an expired lease
-- and no lapsed agent is in an index (each within its batch; call again while counters are at
-- their batch). A due delayed task is queued. An expired lease ends its attempt as failed with
-- error 'lease expired': the task is queued again at once (or dead-lettered when out of
-- attempts), so a late completion by the old worker is refused with STALE. A lapsed agent's
-- tasks are handed back the same way. Every work stream (root:streams) loses its acknowledged
-- entries, those of ended attempts, and keeps exactly its pending and undelivered ones (XLEN =
-- undelivered + XPENDING; LIMIT entries after its oldest pending one are looked at, in all).
-- Dead-letter entries older than the default retention (24 h) are trimmed, and expired
-- messages leave their inboxes (up to LIMIT). Any process may call it; agents and operators
-- call it periodically.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- OPTION LIMIT n: handle at most n expired leases and n expired messages, and look at n
--   stream entries after the oldest pending ones, 1 to 1000 (default 1000)
-- returns: flat array (integers): expired_leases, requeued (expired leases queued again),
--   dead_lettered (expired leases out of attempts), promoted (delayed tasks queued),
--   lapsed_agents, released (tasks the lapsed agents held), expired_messages, trimmed
--   (dead-letter entries past retention)
-- errors: BADARG, VERSION
-- events: task.queued, task.dead, agent.lapsed
-- example: FCALL agentfn_reap 1 agentfn:{default} LIMIT 100
local function agentfn_reap(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 0, 'none')
  local options = parse_options(args, 1, {LIMIT = OPT.count(LIMITS.reap_batch)})
  check_schema(root, namespace)
  local now = now_ms()

  local promoted = TASK.promote_due(root, now, LIMITS.promote_batch)
  local expired, requeued, dead_lettered = REAP.expired_leases(root, now, options.LIMIT or LIMITS.reap_batch)
  -- Release the tasks of the batch of agents sweep_lapsed_agents is about to sweep, to count
  -- them (the sweep's own release_agent_tasks then finds no pending entry of theirs).
  local released = 0
  for _, agent_id in ipairs(redis.call('ZRANGE', K.agents(root), '-inf', now, 'BYSCORE', 'LIMIT', 0,
      LIMITS.sweep_batch)) do
    released = released + release_agent_tasks(root, agent_id, now, 'agent ' .. agent_id .. ' lapsed')
  end
  local lapsed_agents = #sweep_lapsed_agents(root, now)
  local expired_messages = expire_messages(root, now, options.LIMIT or LIMITS.reap_batch)
  REAP.trim_streams(root, options.LIMIT or LIMITS.reap_batch)
  local trimmed = REAP.trim_dead_letters(root, now)
  return {'expired_leases', expired, 'requeued', requeued, 'dead_lettered', dead_lettered,
    'promoted', promoted, 'lapsed_agents', lapsed_agents, 'released', released,
    'expired_messages', expired_messages, 'trimmed', trimmed}
end
