-- agentfn_reap: the periodic cleanup: due delayed tasks, expired leases, lapsed agents,
-- orphaned direct tasks, unused streams, old dead letters.
--
-- Invariant: after a reap no delayed task is overdue, no running task holds an expired lease
-- and no lapsed agent is in an index (each within its batch; call again while counters are at
-- their batch). A due delayed task is queued. An expired lease ends its attempt as failed with
-- error 'lease expired': the task is queued again at once (or dead-lettered when out of
-- attempts), so a late completion by the old worker is refused with STALE. A lapsed agent's
-- tasks are handed back the same way. A direct task whose agent is gone (deregistered, lapsed,
-- or not live when the task was queued) is dead-lettered with error 'agent gone' once its grace
-- (GRACE_MS of agentfn_task_submit) has passed, and the agent's direct stream is deleted when
-- it holds no task. The work streams of the trim index (those where an attempt ended or an
-- entry went since, at most 100 a reap) lose their acknowledged entries and keep exactly their
-- pending and undelivered ones (XLEN = undelivered + XPENDING; LIMIT entries after the oldest
-- pending ones are looked at, in all); one left empty that no live agent reads is deleted.
-- Dead letters older than the namespace's dead_retention_ms go with their task records (up to
-- LIMIT), and expired messages leave their inboxes (up to LIMIT). The cost of a reap follows
-- the work due, not the history of the namespace. Any process may call it; agents and
-- operators call it periodically.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- OPTION LIMIT n: handle at most n expired leases, n expired messages, n orphaned direct tasks
--   (stream entries) and n dead letters, and look at n stream entries after the oldest pending
--   ones, 1 to 1000 (default 1000)
-- returns: flat array (integers): expired_leases, requeued (expired leases queued again),
--   dead_lettered (expired leases out of attempts), promoted (delayed tasks queued),
--   lapsed_agents, released (tasks the lapsed agents held), expired_messages, trimmed
--   (dead letters past retention, deleted with their tasks), orphaned (direct tasks
--   dead-lettered because their agent is gone), deleted_streams (unused work streams deleted)
-- errors: BADARG, VERSION
-- events: task.queued, task.dead, agent.lapsed
-- example: FCALL agentfn_reap 1 agentfn:{default} LIMIT 100
local function agentfn_reap(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 0, 'none')
  local options = parse_options(args, 1, {LIMIT = OPT.count(LIMITS.reap_batch)})
  check_schema(root, namespace)
  local now = now_ms()
  local limit = options.LIMIT or LIMITS.reap_batch

  local promoted = TASK.promote_due(root, now, LIMITS.promote_batch)
  local expired, requeued, dead_lettered = REAP.expired_leases(root, now, limit)
  local lapsed, released = sweep_lapsed_agents(root, now)
  local expired_messages = expire_messages(root, now, limit)
  local orphaned = REAP.orphans(root, now, limit)
  local deleted_streams = REAP.visit_streams(root, now, limit)
  local trimmed = REAP.trim_dead_letters(root, now, limit)
  return {'expired_leases', expired, 'requeued', requeued, 'dead_lettered', dead_lettered,
    'promoted', promoted, 'lapsed_agents', #lapsed, 'released', released,
    'expired_messages', expired_messages, 'trimmed', trimmed, 'orphaned', orphaned,
    'deleted_streams', deleted_streams}
end
