-- 0002_reserved_for_harden: a placeholder that changes nothing, so that migration numbers run
-- without a gap on this branch. Issue 11 (branch harden) owns number 0002: when its
-- migrations/0002_*.lua lands, this file is deleted.
--
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- returns: 'done'
return 'done'
