-- agentfn_task_complete_many: finish many running attempts with their results in one call (and claim the next tasks).
--
-- Invariant: each item is held to agentfn_task_complete's rules (fencing: only the current
-- attempt's holder completes it), and the call is all-or-nothing on its input: every argument
-- is checked before the first write, so a malformed one (or a task named twice) refuses the
-- whole call and nothing changes. Then every item's task is read and checked before the first
-- write: an item refused by its task's state (NOTFOUND, STALE, DENIED) is reported in its place
-- in the reply and changes nothing, and the other items complete; an item canceled while
-- running replies canceled and its result is discarded. Each completed task is finished as by
-- agentfn_task_complete (result, retention, its own task.completed event, its workflow step
-- moves on); the entries of one stream are acknowledged by one XACK and the leases dropped by
-- one ZREM. At most one item may be a workflow's task (its step's completion may enqueue up to
-- workflow_steps steps: one per call keeps the call as short as agentfn_task_complete's). With NEXT n the agent holding the accepted items (those completed or canceled: all
-- one agent's, else BADARG) claims its next tasks, their tokens derived from the token of the
-- first accepted item (as a NEXT of agentfn_task_complete derives them from the token
-- presented); with no item accepted nothing is claimed. INPUT_REQUIRED is agentfn_task_complete's alone.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] count: how many items follow, 1 to 100; each item is three arguments, task_id token
--   result (ARGV[2] to ARGV[4] are the first item's, the next three the second's, and so on)
-- ARGV[2] task_id: an item's task id (a task may be named once per call)
-- ARGV[3] token: the token the claim of that task returned, <attempt>-<40 hex>
-- ARGV[4] result: that task's result, JSON text (the results of one call: at most 64 KiB in all)
-- OPTION NEXT n: then claim up to n tasks for the agent holding the items, 0 to 50 (default 0)
-- OPTION LEASE_MS ms: the lease of each task NEXT claims, as agentfn_task_claim's LEASE_MS
--   (default: each task's timeout_ms; ignored without NEXT)
-- returns: flat array: results, [id, state, error, one triple per item in the order given:
--   state completed, canceled (canceled while running), or refused with error the refusal as
--   an error reply's text, <CODE> <message> (NOTFOUND, STALE or DENIED; '' otherwise)], and
--   with NEXT n > 0 and an item accepted: next, [the agentfn_task_claim reply]
-- errors: BADARG (also a task named twice, or next claims asked for items of several agents), LIMIT (also two
--   workflow tasks), LAPSED (claiming next for an agent that lapsed), VERSION
-- events: task.completed for each item completed, then as agentfn_task_claim
-- example: FCALL agentfn_task_complete_many 1 agentfn:{default} 2 t42 1-9a3c0e5d1b7f2a4c6e8d0b1a3c5e7f9d2b4a6c8e '{"answer":42}' t43 1-0b1d3f5a7c9e2b4d6f8a0c1e3b5d7f9a2c4e6b8d null NEXT 2

-- The options' checkers (built once, not on every call).
local TASK_COMPLETE_MANY_OPTIONS = {NEXT = TASK.next_option, LEASE_MS = OPT.positive_duration}

-- complete_many_items(args): the items, checked (none written yet): count, then count triples,
-- then the options. Returns the items ({task_id, attempt, token, result}) and the options.
local function complete_many_items(args)
  local count = check_items(args, 3, LIMITS.complete_count, 'task_id, token, result')
  local items, named, total = {}, {}, 0
  for index = 1, count do
    local base = 3 * index - 1
    local task_id = check_id(args[base], 'task_id of item ' .. index)
    if named[task_id] then
      raise(ERR.BADARG, 'task ' .. task_id .. ' is named twice (items ' .. named[task_id] .. ' and ' .. index .. ')')
    end
    named[task_id] = index
    local attempt, token = TASK.token_arg(args[base + 1])
    total = check_json_item(args[base + 2], index, 'result', 'results', total)
    items[index] = {task_id = task_id, attempt = attempt, token = token, result = args[base + 2]}
  end
  return items, parse_options(args, 2 + 3 * count, TASK_COMPLETE_MANY_OPTIONS)
end

local function agentfn_task_complete_many(keys, args)
  local root, namespace = check_root(keys)
  local items, options = complete_many_items(args)
  check_schema(root, namespace)

  -- Read phase: every item's task and verdict, before the first write.
  local results, done_ids, done_tasks, done_items, first, step = {}, {}, {}, {}, nil, nil
  for index, item in ipairs(items) do
    local task = SETTLE.load(root, item.task_id, false)
    if task.workflow ~= '' then
      if step then
        raise(ERR.LIMIT, 'one workflow task per call: ' .. step .. ' and ' .. item.task_id .. ' are steps')
      end
      step = item.task_id
    end
    task.token = item.token
    local code, detail = TASK.token_refusal(task, item.task_id, item.attempt, item.token)
    local state, error_text = STATE.COMPLETED, ''
    if code then
      state, error_text = 'refused', code .. ' ' .. detail
    else
      if detail then
        state = STATE.CANCELED
      else
        local done = #done_ids + 1
        done_ids[done], done_tasks[done], done_items[done] = item.task_id, task, item
      end
      if not first then
        first = task
      elseif options.NEXT and options.NEXT > 0 and task.agent ~= first.agent then
        raise(ERR.BADARG, 'NEXT claims for one agent: the items are held by ' .. first.agent .. ' and '
          .. task.agent)
      end
    end
    local position = 3 * index - 2
    results[position], results[position + 1], results[position + 2] = item.task_id, state, error_text
  end
  local now = now_ms()
  local agent = first and SETTLE.next_agent(root, first, options, now)

  -- Write phase: the deliveries of all at once, then each task's record, event and workflow.
  if #done_ids > 0 then
    TASK.unlink_all(root, done_ids, done_tasks)
  end
  for index, task in ipairs(done_tasks) do
    SETTLE.finish(root, done_ids[index], task, STATE.COMPLETED, 'completed', now,
      {'entry', '', 'result', done_items[index].result})
  end
  return SETTLE.reply(root, first or {}, agent, options, now, {'results', results})
end
