-- SETTLE: how an attempt ends (finish, retry, dead letter, cancel), the shared path of
-- agentfn_task_complete and agentfn_task_fail, and release_agent_tasks. Listed after the
-- workflow hook (workflow_hooks.lua) because these call workflow_on_task_finished.

local SETTLE = {}

-- The fields SETTLE.load reads: those SETTLE.finish, SETTLE.cancel and TASK.check_token use, and
-- with `failing`, those SETTLE.after_failure uses as well (cancel_requested is read apart).
local SETTLE_FIELDS = {'state', 'attempt', 'agent', 'stream', 'entry', 'workflow', 'retention_ms', 'idempotency_key',
  'token_sha1'}
local SETTLE_FAILURE_FIELDS = {'state', 'attempt', 'agent', 'stream', 'entry', 'workflow', 'retention_ms',
  'idempotency_key', 'token_sha1', 'max_attempts', 'backoff_ms', 'backoff_max_ms', 'capability', 'errors'}

-- SETTLE.load(root, task_id, failing): the task fields the settling helpers read ('' for unset),
-- as one table; with `failing` also those SETTLE.after_failure reads. Every completion reads
-- them, so: one HMGET of the fewest fields (each costs a scan of the hash), cancel_requested
-- only for a canceled task (the only state in which it is read), and a table made by one
-- constructor (sized once).
function SETTLE.load(root, task_id, failing)
  local key = K.task(root, task_id)
  local values = redis.call('HMGET', key, unpack(failing and SETTLE_FAILURE_FIELDS or SETTLE_FIELDS))
  local task = {state = values[1] or '', attempt = values[2] or '', cancel_requested = '', agent = values[3] or '',
    stream = values[4] or '', entry = values[5] or '', workflow = values[6] or '', retention_ms = values[7] or '',
    idempotency_key = values[8] or '', token_sha1 = values[9] or ''}
  if failing then
    task.max_attempts, task.backoff_ms, task.backoff_max_ms = values[10] or '', values[11] or '', values[12] or ''
    task.capability, task.errors = values[13] or '', values[14] or ''
  end
  if task.state == STATE.CANCELED then
    task.cancel_requested = redis.call('HGET', key, 'cancel_requested') or ''
  end
  return task
end

-- SETTLE.finish(root, task_id, task, state, outcome, now, fields): a terminal state (completed,
-- failed, dead, canceled): write state, finished_ms and `fields` (a flat list that always sets
-- entry), expire the task hash and its idempotency key after the task's retention (a dead
-- task's are kept as long as its dead letter: agentfn_reap deletes them with it), emit
-- task.<state>, and tell the task's workflow the `outcome` (no call when outcome is nil).
-- `task` is a table from SETTLE.load.
function SETTLE.finish(root, task_id, task, state, outcome, now, fields)
  local key = K.task(root, task_id)
  redis.call('HSET', key, 'state', state, 'finished_ms', ms_text(now), unpack(fields))
  if state ~= STATE.DEAD then
    local retention_ms = task.retention_ms ~= '' and task.retention_ms or constant_text(DEFAULTS.retention_ms)
    redis.call('PEXPIRE', key, retention_ms)
    if task.idempotency_key ~= '' then
      redis.call('PEXPIRE', K.idempotency(root, task.idempotency_key), retention_ms)
    end
  end
  emit(root, 'task.' .. state, {'task', task_id})
  if outcome and task.workflow ~= '' then
    workflow_on_task_finished(root, hash_to_table(redis.call('HGETALL', key)), outcome, now)
  end
end

-- SETTLE.errors_with(task, error_text, now): the task's error history (JSON array of
-- {attempt, error, agent, at_ms}) with one more record for its current attempt.
function SETTLE.errors_with(task, error_text, now)
  local record = cjson.encode({attempt = tonumber(task.attempt), error = error_text, agent = task.agent,
    at_ms = now})
  if task.errors ~= '' then
    return string.sub(task.errors, 1, -2) .. ',' .. record .. ']'
  end
  return '[' .. record .. ']'
end

-- SETTLE.dead_letter(root, task_id, task, error_text, errors, now): the task is dead: an entry
-- in K.dead (task, capability, attempts, error, errors) and the task's entry = its id. `task`
-- is a table from SETTLE.load with `failing`; `errors` the history to keep.
function SETTLE.dead_letter(root, task_id, task, error_text, errors, now)
  local dead_entry = redis.call('XADD', K.dead(root), '*', 'task', task_id, 'capability', task.capability,
    'attempts', task.attempt, 'error', error_text, 'errors', errors)
  SETTLE.finish(root, task_id, task, STATE.DEAD, 'dead', now,
    {'entry', dead_entry, 'error', error_text, 'errors', errors})
end

-- SETTLE.after_failure(root, task_id, task, error_text, now, retry, backoff): attempt
-- task.attempt failed and its delivery is already unlinked (TASK.unlink). The error joins the
-- history (errors: JSON array of {attempt, error, agent, at_ms}). Without retry: failed. Out of
-- attempts: dead, with an entry in K.dead. Otherwise queued again: delayed by the retry backoff
-- when `backoff` is true and the delay is positive, else appended to its stream at once.
-- Returns the new state and due_ms ('' when terminal).
function SETTLE.after_failure(root, task_id, task, error_text, now, retry, backoff)
  local attempt = tonumber(task.attempt)
  local errors = SETTLE.errors_with(task, error_text, now)
  if not retry then
    SETTLE.finish(root, task_id, task, STATE.FAILED, 'failed', now,
      {'entry', '', 'error', error_text, 'errors', errors})
    return STATE.FAILED, ''
  end
  if attempt >= tonumber(task.max_attempts) then
    SETTLE.dead_letter(root, task_id, task, error_text, errors, now)
    return STATE.DEAD, ''
  end
  local delay = 0
  if backoff then
    delay = TASK.retry_delay(tonumber(task.backoff_ms), tonumber(task.backoff_max_ms), attempt)
  end
  local key = K.task(root, task_id)
  if delay > 0 then
    local due_text = ms_text(now + delay)
    TASK.delay(root, task_id, due_text)
    redis.call('HSET', key, 'state', STATE.DELAYED, 'due_ms', due_text, 'entry', '',
      'error', error_text, 'errors', errors)
    emit(root, 'task.delayed', {'task', task_id})
    return STATE.DELAYED, now + delay
  end
  redis.call('HSET', key, 'state', STATE.QUEUED, 'due_ms', ms_text(now),
    'entry', TASK.enqueue(root, task.stream, task_id), 'error', error_text, 'errors', errors)
  emit(root, 'task.queued', {'task', task_id})
  return STATE.QUEUED, now
end

-- SETTLE.cancel(root, task_id, task, now, notify): cancel a queued, delayed or running task
-- (the caller checked the state): its queue entry, delayed-set member or delivery and lease go;
-- a running task gets cancel_requested 1 so that its worker learns at its next extend, complete
-- or fail. The workflow hook runs only when `notify` is true (a workflow canceling its own
-- tasks passes false).
function SETTLE.cancel(root, task_id, task, now, notify)
  local cancel_requested = ''
  if task.state == STATE.RUNNING then
    TASK.unlink(root, task_id, task)
    cancel_requested = '1'
  elseif task.state == STATE.DELAYED then
    redis.call('ZREM', K.delayed(root), task_id)
  elseif task.entry ~= '' then
    redis.call('XDEL', task.stream, task.entry)
    TASK.mark_trim(root, task.stream)
  end
  SETTLE.finish(root, task_id, task, STATE.CANCELED, notify and 'canceled' or nil, now,
    {'entry', '', 'cancel_requested', cancel_requested})
end

-- SETTLE.open_attempt(root, namespace, args, arity_names, check_third, checkers, failing): the
-- shared prologue of agentfn_task_complete and agentfn_task_fail after check_root, all before
-- the first write: the arguments (task_id, token and a third value that check_third(value) checks; arity_names
-- names them), the options (`checkers` as parse_options takes them), the schema, then the task
-- (SETTLE.load, `failing` as there) and the fencing rule (TASK.check_token). The task table
-- keeps the token presented (task.token: the key of the tasks NEXT claims).
-- Returns task_id, task, canceled (the attempt was canceled while running), options.
function SETTLE.open_attempt(root, namespace, args, arity_names, check_third, checkers, failing)
  check_arity(args, 3, arity_names)
  local task_id = check_id(args[1], 'task_id')
  local attempt, token = TASK.token_arg(args[2])
  check_third(args[3])
  local options = parse_options(args, 4, checkers)
  check_schema(root, namespace)
  local task = SETTLE.load(root, task_id, failing)
  task.token = token
  return task_id, task, TASK.check_token(task, task_id, attempt, token), options
end

-- SETTLE.next_agent(root, task, options, now): with NEXT n > 0, the live agent that claims next
-- (LAPSED when it lapsed, so call it before the first write); false without NEXT.
function SETTLE.next_agent(root, task, options, now)
  return (options.NEXT or 0) > 0 and live_agent(root, task.agent, now)
end

-- SETTLE.reply(root, task, agent, options, now, reply): the reply of an ended attempt (a flat
-- array), with `next, <the agentfn_task_claim reply>` appended when `agent` (from
-- SETTLE.next_agent) claims its next tasks, under the LEASE_MS option, their tokens derived
-- from the token presented (task.token: its presenter proved it holds the attempt).
function SETTLE.reply(root, task, agent, options, now, reply)
  if agent then
    reply[#reply + 1] = 'next'
    reply[#reply + 1] = TASK.claim(root, task.agent, agent.capabilities, options.NEXT, options.LEASE_MS, now,
      task.token)
  end
  return reply
end

-- SETTLE.agent_streams(root, agent_id): every work stream an agent may hold tasks in: its
-- direct stream and its capabilities' and lingering capabilities' (those it dropped while it
-- held a task of theirs) streams of each priority. No writes.
function SETTLE.agent_streams(root, agent_id)
  local record = redis.call('HMGET', K.agent(root, agent_id), 'capabilities', 'lingering')
  local capabilities = split_csv(record[1] or '')
  for _, capability in ipairs(split_csv(record[2] or '')) do
    capabilities[#capabilities + 1] = capability
  end
  return TASK.streams_of(root, agent_id, capabilities)
end

-- SETTLE.held_tasks(root, agent_id, streams, limit): the ids of up to `limit` tasks an agent
-- holds: the pending entries of its consumer (XPENDING ... <agent_id>) in `streams` (from
-- SETTLE.agent_streams). No set of an agent's tasks is kept beside the pending entries (a SADD
-- per claim and an SREM per completion saved). An entry deleted while pending names no task
-- and is skipped. No writes.
function SETTLE.held_tasks(root, agent_id, streams, limit)
  local held = {}
  for _, stream in ipairs(streams) do
    if #held >= limit then
      break
    end
    if redis.call('EXISTS', stream) == 1 then
      local after, want, page = '-', 0, nil
      repeat
        want = math.min(100, limit - #held)
        page = redis.call('XPENDING', stream, GROUP, after, '+', string.format('%d', want), agent_id)
        for _, pending in ipairs(page) do
          local entry = redis.call('XRANGE', stream, pending[1], pending[1])[1]
          if entry and entry[2][1] == 'task' then
            held[#held + 1] = entry[2][2]
          end
          after = '(' .. pending[1]
        end
      until #page < want or #held >= limit
    end
  end
  return held
end

-- release_agent_tasks(root, agent_id, now, reason, budget): hand back the tasks an agent holds
-- (SETTLE.held_tasks) because the agent is gone (lapsed or deregistered), at once rather than
-- when the lease ends, `budget` of them at most (a call's time stays bounded; any others come
-- back when their leases expire, through agentfn_reap). Each counts as a failed attempt with
-- error `reason`: queued again without backoff, or dead when it is out of attempts. The
-- agent's consumers (it has no pending entry left) leave the groups of every stream it read
-- (its direct stream, its capabilities' and those it still held tasks of when it dropped
-- them, `lingering`), so XINFO CONSUMERS lists no departed agent, and those streams join the
-- trim index (agentfn_reap deletes them once unused); a direct stream that still holds tasks
-- is watched as an orphan's (TASK.watch_direct). The agent record must still exist and the
-- agent must have left K.agents (or be past its deadline). Returns how many tasks were
-- released. (Libraries before 2.0 kept a set of each agent's tasks, K.agent_tasks: deleted
-- here, the only place that still names it.)
local function release_agent_tasks(root, agent_id, now, reason, budget)
  local streams = SETTLE.agent_streams(root, agent_id)
  local listed = {}
  for _, stream in ipairs(streams) do
    listed[stream] = true
  end
  local released = 0
  for _, task_id in ipairs(SETTLE.held_tasks(root, agent_id, streams, budget)) do
    local task = SETTLE.load(root, task_id, true)
    if task.state == STATE.RUNNING and task.agent == agent_id then
      if not listed[task.stream] then
        listed[task.stream] = true
        streams[#streams + 1] = task.stream
      end
      TASK.unlink(root, task_id, task)
      SETTLE.after_failure(root, task_id, task, reason, now, true, false)
      released = released + 1
    end
  end
  redis.call('DEL', K.agent_tasks(root, agent_id))
  for _, stream in ipairs(streams) do
    if redis.call('EXISTS', stream) == 1 then
      redis.call('XGROUP', 'DELCONSUMER', stream, GROUP, agent_id)
      TASK.mark_trim(root, stream)
    end
  end
  if redis.call('EXISTS', K.direct(root, agent_id)) == 1 then
    TASK.watch_direct(root, agent_id, 'LT')
  end
  return released
end
