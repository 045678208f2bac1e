-- TASK: the task record and its work streams, shared by the task transitions (agentfn_task_*,
-- agentfn_reap) and the workflow transitions. Grouped in one table: the library's top-level
-- locals and a function's upvalues are limited. create_task is a plain local because the
-- workflow transitions call it by that name.
--
-- Where a task is, by state: queued = an undelivered entry `task <id>` in its stream (the
-- agent's direct stream when routed TO an agent, else its capability's stream for its priority);
-- delayed = a member of K.delayed scored by due time; running = a pending entry of its stream
-- (consumer = the agent: what an agent holds is its consumer's pending entries) and a member of
-- K.leases scored by lease deadline; finished (completed, failed, canceled, dead) = in no stream, set or lease, the hash
-- expiring after retention_ms (a dead task also has an entry in K.dead).
--
-- Safe trimming: an attempt's stream entry is acknowledged (XACK) the moment the attempt ends,
-- and a retry appends a new entry; a queued task's entry is deleted when it is canceled.
-- agentfn_reap trims each work stream (K.streams lists them) up to its oldest pending entry, or
-- up to its first undelivered one when none is pending (XTRIM MINID), and deletes the
-- acknowledged entries after the oldest pending one (REAP.trim_stream): what goes is
-- acknowledged entries only. So after a reap a work stream holds exactly its undelivered
-- entries plus its pending ones (XLEN = undelivered + XPENDING); nothing is ever trimmed by
-- length, so an entry still in flight is never lost. (Deleting each entry as its attempt ended
-- cost more: XDEL of the oldest entry of a stream was the dearest command of a completion.)
local TASK = {}

-- Every field of a task hash, in the order agentfn_task_get replies with them.
TASK.FIELDS = {'id', 'capability', 'payload', 'priority', 'state', 'attempt', 'max_attempts',
  'backoff_ms', 'backoff_max_ms', 'timeout_ms', 'created_ms', 'due_ms', 'started_ms', 'finished_ms',
  'agent', 'stream', 'entry', 'lease_deadline_ms', 'result', 'error', 'errors', 'to',
  'idempotency_key', 'workflow', 'step', 'inputs', 'prompt', 'retention_ms', 'cancel_requested',
  'traceparent', 'grace_ms'}

-- The priority of a task submitted without one (constants.Priority: high, normal, low).
TASK.DEFAULT_PRIORITY = PRIORITIES[2]

-- Option checkers for parse_options specs (also for the workflow transitions).
function TASK.priority_option(value, name) return check_enum(value, name, PRIORITIES) end
function TASK.attempts_option(value, name) return check_int(value, name, 1, LIMITS.max_attempts) end
function TASK.next_option(value, name) return check_int(value, name, 0, LIMITS.claim_count) end

-- TASK.token_arg(value): a claim token, <attempt>-<40 hex> (the attempt: 1 or more, no leading
-- zero). Returns the attempt (a number) and the token. The message never shows the value.
function TASK.token_arg(value)
  local attempt, hex = string.match(value, '^(%d+)%-(%x+)$')
  if not attempt or #hex ~= 40 or #attempt > 15 or string.sub(attempt, 1, 1) == '0' then
    raise(ERR.BADARG, 'token must be <attempt>-<40 hex digits>, as the claim returned it')
  end
  return tonumber(attempt), value
end

-- TASK.token(key, task_id, attempt): the token of an attempt claimed with `key` (the claimer's
-- secret, or for the tasks the NEXT option of complete/fail claims, the token presented there):
-- <attempt>-sha1hex(key:task_id:attempt). Only the claimer can compute it; the task keeps only
-- its sha1 (token_sha1).
function TASK.token(key, task_id, attempt)
  return attempt .. '-' .. redis.sha1hex(key .. ':' .. task_id .. ':' .. attempt)
end

-- TASK.stream(root, capability, priority, to): the stream a task is queued in.
function TASK.stream(root, capability, priority, to)
  if to and to ~= '' then
    return K.direct(root, to)
  end
  return K.queue(root, capability, priority)
end

-- TASK.direct_agent(root, stream): the agent id of a direct stream's key, or nil for a
-- capability's stream.
function TASK.direct_agent(root, stream)
  local prefix = root .. ':direct:'
  if string.sub(stream, 1, #prefix) == prefix then
    return string.sub(stream, #prefix + 1)
  end
  return nil
end

-- TASK.watch_direct(root, agent_id, mode): when the agent is not live (not in K.agents, or its
-- deadline passed on the call's clock), its direct stream is an orphan's: the agent joins
-- K.orphans due now and K.orphans_since records since when (the first time only), so
-- agentfn_reap dead-letters its direct tasks once their grace has passed. `mode` 'LT': a
-- scheduled check moves to now (a task was queued: its grace may end earlier); 'NX': a
-- scheduled check stays. Called after now_ms() (it reads CLOCK).
function TASK.watch_direct(root, agent_id, mode)
  local deadline = redis.call('ZSCORE', K.agents(root), agent_id)
  if deadline and tonumber(deadline) > CLOCK.ms then
    return
  end
  redis.call('HSETNX', K.orphans_since(root), agent_id, CLOCK.text)
  redis.call('ZADD', K.orphans(root), mode, CLOCK.text, agent_id)
end

-- TASK.mark_trim(root, stream): the stream may need trimming (an attempt ended, an entry went):
-- it joins the trim index K.trim, scored by the time it became due (NX: the first time counts,
-- so the reaper visits streams oldest first). Called after now_ms() (it reads CLOCK).
function TASK.mark_trim(root, stream)
  redis.call('ZADD', K.trim(root), 'NX', CLOCK.text, stream)
end

-- TASK.enqueue(root, stream, task_id): append `task <id>` to a work stream and return the entry
-- id. A new stream is created with its consumer group reading from id 0, so no entry is
-- skipped, and joins the namespace's work streams (K.streams). A task queued in the direct
-- stream of an agent that is not live is watched (TASK.watch_direct). Called after now_ms().
function TASK.enqueue(root, stream, task_id)
  local entry = redis.call('XADD', stream, 'NOMKSTREAM', '*', 'task', task_id)
  if not entry then
    redis.call('XGROUP', 'CREATE', stream, GROUP, '0', 'MKSTREAM')
    redis.call('SADD', K.streams(root), stream)
    entry = redis.call('XADD', stream, '*', 'task', task_id)
  end
  local agent_id = TASK.direct_agent(root, stream)
  if agent_id then
    TASK.watch_direct(root, agent_id, 'LT')
  end
  return entry
end

-- TASK.load(root, task_id, names): the named fields of a task hash as a table, '' for unset
-- fields (state '' means the task does not exist). No writes.
function TASK.load(root, task_id, names)
  local values = redis.call('HMGET', K.task(root, task_id), unpack(names))
  local task = {}
  for index = 1, #names do
    task[names[index]] = values[index] or ''
  end
  return task
end

-- TASK.token_refusal(task, task_id, attempt, token): the fencing rule as a verdict, no writes
-- (`attempt`, `token` from TASK.token_arg; `task` needs state, attempt, token_sha1 and
-- cancel_requested). NOTFOUND when the task does not exist; STALE unless `attempt` is the
-- current attempt; DENIED unless sha1hex(token) is the attempt's token_sha1 (the caller is not
-- its holder; a task claimed before 3.0 has none: its attempt can only end by its lease); STALE
-- unless the task is running under it. Returns the code and message of the refusal, or nil and
-- whether that attempt was canceled while running (the caller replies `canceled` and writes
-- nothing). Messages never show the token.
function TASK.token_refusal(task, task_id, attempt, token)
  if task.state == '' then
    return ERR.NOTFOUND, 'task ' .. task_id .. ' does not exist'
  end
  if tonumber(task.attempt) ~= attempt then
    return ERR.STALE, 'attempt ' .. attempt .. ' of task ' .. task_id .. ' is stale: the task is at attempt '
      .. task.attempt
  end
  if redis.sha1hex(token) ~= task.token_sha1 then
    return ERR.DENIED, 'task ' .. task_id .. ': the token is not the one the claim of attempt ' .. attempt
      .. ' returned'
  end
  if task.state == STATE.RUNNING then
    return nil, false
  end
  if task.state == STATE.CANCELED and task.cancel_requested == '1' then
    return nil, true
  end
  return ERR.STALE, 'task ' .. task_id .. ' is no longer running under attempt ' .. attempt
    .. ' (state ' .. task.state .. ')'
end

-- TASK.check_token(task, task_id, attempt, token): TASK.token_refusal before any write, raised:
-- returns true when the attempt was canceled while running, false when it is running.
function TASK.check_token(task, task_id, attempt, token)
  local code, detail = TASK.token_refusal(task, task_id, attempt, token)
  if code then
    raise(code, detail)
  end
  return detail
end

-- TASK.retry_delay(backoff_ms, backoff_max_ms, attempt): the wait before retrying after failed
-- attempt `attempt`: backoff_ms * 2^(attempt-1), at most backoff_max_ms.
function TASK.retry_delay(backoff_ms, backoff_max_ms, attempt)
  if backoff_ms <= 0 then
    return 0
  end
  return math.min(backoff_ms * 2 ^ (attempt - 1), backoff_max_ms)
end

-- TASK.unlink(root, task_id, task): end a running attempt's delivery: acknowledge its stream
-- entry (the stream joins the trim index; agentfn_reap trims it; the agent no longer holds it)
-- and drop its lease. `task` needs stream and entry.
function TASK.unlink(root, task_id, task)
  if task.entry ~= '' then
    redis.call('XACK', task.stream, GROUP, task.entry)
    TASK.mark_trim(root, task.stream)
  end
  redis.call('ZREM', K.leases(root), task_id)
end

-- TASK.unlink_all(root, task_ids, tasks): TASK.unlink of many running attempts at once (`tasks`:
-- tables as TASK.unlink takes, in the order of `task_ids`): one XACK per stream for all its
-- entries (the stream joins the trim index once) and one ZREM of all their leases.
function TASK.unlink_all(root, task_ids, tasks)
  local entries, streams = {}, {}
  for index = 1, #task_ids do
    local task = tasks[index]
    if task.entry ~= '' then
      local list = entries[task.stream]
      if not list then
        list = {}
        entries[task.stream] = list
        streams[#streams + 1] = task.stream
      end
      list[#list + 1] = task.entry
    end
  end
  for _, stream in ipairs(streams) do
    redis.call('XACK', stream, GROUP, unpack(entries[stream]))
    TASK.mark_trim(root, stream)
  end
  redis.call('ZREM', K.leases(root), unpack(task_ids))
end

-- TASK.delay(root, task_id, due_text): put a task in the delayed set, due at `due_text` (ms, as
-- text). When it becomes the earliest due task, an entry in the capped delayed-wake stream wakes
-- the agents blocked on a claim's wait list (it is in every one): they claim again and block
-- until the new next_due_ms. A later due time needs no wake-up: they block until an earlier
-- one at most, and the claim they make then names the next.
function TASK.delay(root, task_id, due_text)
  local delayed = K.delayed(root)
  redis.call('ZADD', delayed, due_text, task_id)
  if redis.call('ZRANK', delayed, task_id) == 0 then
    redis.call('XADD', K.delayed_wake(root), 'MAXLEN', '~', constant_text(DEFAULTS.delayed_wake_max), '*',
      'task', task_id)
  end
end

-- TASK.idempotent(root, key): the id and state of the task submitted with an idempotency key
-- while that task is retained; nil otherwise. No writes.
function TASK.idempotent(root, key)
  local task_id = redis.call('GET', K.idempotency(root, key))
  if not task_id then
    return nil
  end
  local state = redis.call('HGET', K.task(root, task_id), 'state')
  if not state then
    return nil
  end
  return task_id, state
end

-- TASK.submit_checkers(idempotency_key): the checkers of a submit's options, for parse_options
-- (agentfn_task_submit's; agentfn_task_submit_many shares all of them among its tasks but
-- IDEMPOTENCY_KEY, whose checker it gives: one that refuses it). Called once, at load time.
function TASK.submit_checkers(idempotency_key)
  return {PRIORITY = TASK.priority_option, DELAY_MS = OPT.duration, MAX_ATTEMPTS = TASK.attempts_option,
    BACKOFF_MS = OPT.duration, BACKOFF_MAX_MS = OPT.duration, TIMEOUT_MS = OPT.positive_duration,
    IDEMPOTENCY_KEY = idempotency_key, TO = OPT.id, GRACE_MS = OPT.duration,
    RETENTION_MS = OPT.positive_duration, TRACEPARENT = OPT.traceparent}
end

-- TASK.submit_options(args, first, checkers): a submit's options from args[first] on, checked
-- (GRACE_MS only with TO). No reads.
function TASK.submit_options(args, first, checkers)
  local options = parse_options(args, first, checkers)
  if options.GRACE_MS and not options.TO then
    raise(ERR.BADARG, 'GRACE_MS applies to a task submitted TO an agent')
  end
  return options
end

-- TASK.submit_spec(root, options): the spec create_task takes from a submit's options (each option
-- sets the spec field of its name: PRIORITY sets priority), once the agent named by TO is known
-- to be registered (else NOTFOUND). No writes.
function TASK.submit_spec(root, options)
  if options.TO and redis.call('EXISTS', K.agent(root, options.TO)) == 0 then
    raise(ERR.NOTFOUND, 'agent ' .. options.TO .. ' is not registered')
  end
  local spec = {}
  for name, value in pairs(options) do
    spec[string.lower(name)] = value
  end
  return spec
end

-- TASK.promote_due(root, now, limit): move up to `limit` delayed tasks whose due time has come
-- (soonest first) into their streams (`now`: a number or its text; `limit`: a constant). Returns
-- how many were promoted. Every claim calls it, so its arguments go to redis.call as text.
function TASK.promote_due(root, now, limit)
  local delayed = K.delayed(root)
  local due = redis.call('ZRANGE', delayed, '-inf', type(now) == 'number' and ms_text(now) or now, 'BYSCORE',
    'LIMIT', '0', constant_text(limit))
  if #due == 0 then
    return 0
  end
  local promoted = 0
  for _, task_id in ipairs(due) do
    local key = K.task(root, task_id)
    local task = redis.call('HMGET', key, 'state', 'stream')
    if task[1] == STATE.DELAYED then
      redis.call('HSET', key, 'state', STATE.QUEUED, 'entry', TASK.enqueue(root, task[2], task_id))
      emit(root, 'task.queued', {'task', task_id})
      promoted = promoted + 1
    end
  end
  redis.call('ZREM', delayed, unpack(due))
  return promoted
end

-- The optional text fields of a task, stored only when given.
TASK.OPTIONAL_FIELDS = {'to', 'workflow', 'step', 'inputs', 'idempotency_key', 'traceparent', 'grace_ms'}

-- TASK.take_ids(root, count): reserve `count` task ids with one HINCRBY; returns the number of
-- the last (the ids are t<last - count + 1> to t<last>).
function TASK.take_ids(root, count)
  return redis.call('HINCRBY', K.meta(root), 'task_seq', count == 1 and '1' or tostring(count))
end

-- create_task(root, now, spec, seq): create a task and queue it (or delay it); returns its id and
-- state. `spec` was validated by the caller: capability, payload (JSON text), and optionally
-- priority, delay_ms, max_attempts, backoff_ms, backoff_max_ms, timeout_ms, to, grace_ms,
-- retention_ms, workflow, step, inputs (JSON text), idempotency_key, traceparent; DEFAULTS fill the rest (as text: every
-- number passed to redis.call is converted on each call). `seq`: the number of an id reserved
-- with TASK.take_ids (by default one is taken).
local function create_task(root, now, spec, seq)
  local task_id = string.format('t%d', seq or TASK.take_ids(root, 1))
  local priority = spec.priority or TASK.DEFAULT_PRIORITY
  local stream = TASK.stream(root, spec.capability, priority, spec.to)
  local now_text = ms_text(now)
  local state, due_ms, entry = STATE.QUEUED, now_text, nil
  if (spec.delay_ms or 0) > 0 then
    state, due_ms = STATE.DELAYED, ms_text(now + spec.delay_ms)
    TASK.delay(root, task_id, due_ms)
  else
    entry = TASK.enqueue(root, stream, task_id)
  end
  -- due_ms (unless it stands second, for a delayed task) and the optional fields given.
  local extra = entry and {'due_ms', due_ms} or {}
  for index = 1, #TASK.OPTIONAL_FIELDS do
    local name = TASK.OPTIONAL_FIELDS[index]
    if spec[name] and spec[name] ~= '' then
      extra[#extra + 1] = name
      extra[#extra + 1] = spec[name]
    end
  end
  -- The fields a claim and a completion read or write come first: a small hash is a list that
  -- HMGET and HSET scan from its start. A delayed task has no entry yet: due_ms takes its place.
  redis.call('HSET', K.task(root, task_id), 'state', state, entry and 'entry' or 'due_ms', entry or due_ms,
    'attempt', '0', 'stream', stream, 'timeout_ms', spec.timeout_ms or constant_text(DEFAULTS.task_timeout_ms),
    'retention_ms', spec.retention_ms or constant_text(DEFAULTS.retention_ms), 'payload', spec.payload,
    'id', task_id, 'capability', spec.capability, 'priority', priority,
    'max_attempts', spec.max_attempts or constant_text(DEFAULTS.max_attempts),
    'backoff_ms', spec.backoff_ms or constant_text(DEFAULTS.backoff_ms),
    'backoff_max_ms', spec.backoff_max_ms or constant_text(DEFAULTS.backoff_max_ms), 'created_ms', now_text,
    unpack(extra))
  if spec.idempotency_key and spec.idempotency_key ~= '' then
    redis.call('SET', K.idempotency(root, spec.idempotency_key), task_id)
  end
  emit(root, 'task.submitted', {'task', task_id, 'state', state, 'capability', spec.capability})
  return task_id, state
end
