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
-- LIMIT), and expired messages leave their inboxes (up to LIMIT). The status indexes drop the
-- inboxes, lapsed agents' records and finished workflows whose keys expired. The cost of a reap follows
-- the work due, not the history of the namespace. Any process may call it; agents and
-- operators call it periodically.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- OPTION LIMIT n: the call's budget, 1 to 150 (default 150): the due delayed tasks, expired
--   leases, lapsed agents and the tasks they hand back, expired messages, direct stream entries
--   of departed agents, work streams visited and the entries looked at in them, dead letters
--   and expired status index entries it handles, in all (in that order; what is left waits for
--   the next reap)
-- returns: flat array (integers): expired_leases, requeued (expired leases queued again),
--   dead_lettered (expired leases out of attempts), promoted (delayed tasks queued),
--   lapsed_agents, released (tasks the lapsed agents held), expired_messages, trimmed
--   (dead letters past retention, deleted with their tasks), orphaned (direct tasks
--   dead-lettered because their agent is gone), deleted_streams (unused work streams deleted),
--   pruned (status index entries of inboxes, lapsed agents and workflows whose keys expired)
-- errors: BADARG, VERSION
-- events: task.queued, task.dead, agent.lapsed
-- example: FCALL agentfn_reap 1 agentfn:{default} LIMIT 100
local function agentfn_reap(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 0, 'none')
  local options = parse_options(args, 1, {LIMIT = OPT.count(LIMITS.reap_batch)})
  check_schema(root, namespace)
  local now = now_ms()
  -- One budget for the whole call, spent in this order: each part takes what it handles.
  local budget = options.LIMIT or LIMITS.reap_batch

  local promoted = TASK.promote_due(root, now, math.min(LIMITS.promote_batch, budget))
  budget = budget - promoted
  local expired, requeued, dead_lettered = 0, 0, 0
  if budget > 0 then
    expired, requeued, dead_lettered = REAP.expired_leases(root, now, budget)
    budget = budget - expired
  end
  local lapsed, released = {}, 0
  if budget > 0 then
    lapsed, released = sweep_lapsed_agents(root, now, budget)
    budget = budget - #lapsed - released
  end
  local expired_messages = budget > 0 and expire_messages(root, now, budget) or 0
  budget = budget - expired_messages
  local orphaned, deleted_streams, trimmed
  orphaned, budget = REAP.spend(budget, REAP.orphans, root, now)
  deleted_streams, budget = REAP.spend(budget, REAP.visit_streams, root, now)
  trimmed, budget = REAP.spend(budget, REAP.trim_dead_letters, root, now)
  local pruned = REAP.spend(budget, REAP.expired_indexes, root, now)
  return {'expired_leases', expired, 'requeued', requeued, 'dead_lettered', dead_lettered,
    'promoted', promoted, 'lapsed_agents', #lapsed, 'released', released,
    'expired_messages', expired_messages, 'trimmed', trimmed, 'orphaned', orphaned,
    'deleted_streams', deleted_streams, 'pruned', pruned}
end
