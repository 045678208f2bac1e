#!lua name=agentfn
-- agentfn 3.0.0: the Redis Functions library that coordinates agents.
-- Rendered by `agentfn render` from lua/ (library.lua.j2, includes/, functions/).
-- Do not edit the rendered text: edit lua/ and render again.

-- Constants rendered from agentfn/constants.py and agentfn/errors.py.
local LIBRARY_VERSION = '3.0.0'
local CODE_SHA = '58b017de3a6b858f3e9921cc9b76a4e9b7a81bcc17911dd2674462450dca327d'
local SCHEMA_VERSION = 4
local GROUP = 'agentfn'
local ERR = {BADARG = 'BADARG', CONFLICT = 'CONFLICT', CYCLE = 'CYCLE', DENIED = 'DENIED', INTERNAL = 'INTERNAL', LAPSED = 'LAPSED', LIMIT = 'LIMIT', MOVING = 'MOVING', NOTFOUND = 'NOTFOUND', STALE = 'STALE', STATE = 'STATE', VERSION = 'VERSION'}
local STATE = {CANCELED = 'canceled', COMPLETED = 'completed', DEAD = 'dead', DELAYED = 'delayed', FAILED = 'failed', QUEUED = 'queued', RUNNING = 'running'}
local PRIORITIES = {'high', 'normal', 'low'}
local WF_STATE = {CANCELED = 'canceled', COMPLETED = 'completed', FAILED = 'failed', RUNNING = 'running'}
local STEP_STATE = {CANCELED = 'canceled', COMPLETED = 'completed', FAILED = 'failed', INPUT_REQUIRED = 'input-required', QUEUED = 'queued', SKIPPED = 'skipped', WAITING = 'waiting'}
local WF_POLICY = {CONTINUE = 'continue', FAIL_FAST = 'fail_fast'}
local LIMITS = {broadcast_recipients = 250, capabilities_per_agent = 32, capability_length = 64, claim_count = 50, complete_count = 100, context_bytes = 65536, duration_ms = 31536000000, error_bytes = 8192, find_count = 500, id_length = 128, json_bytes = 65536, json_depth = 128, json_values = 16384, max_attempts = 1000, message_batch = 200, namespace_length = 64, promote_batch = 100, reap_batch = 150, release_batch = 100, submit_count = 100, sweep_batch = 20, trim_batch = 100, workflow_steps = 150}
local DEFAULTS = {agent_retention_ms = 86400000, agent_ttl_ms = 30000, backoff_max_ms = 60000, backoff_ms = 1000, dead_retention_ms = 86400000, delayed_wake_max = 100, direct_grace_ms = 300000, events_max = 10000, inbox_max = 10000, max_attempts = 3, retention_ms = 86400000, task_timeout_ms = 30000}

-- include: includes/raise.lua
-- raise(code, message): abort the current function with the coded error `<code> <message>`.
-- Call it only before the first write: Redis does not roll a function back.
local function raise(code, message)
  error({agentfn_code = code, message = message}, 0)
end

-- failure_code(failure): the code (NOGROUP, NOPERM...) of a Redis error that pcall caught from
-- redis.call, or nil: a table {err = '<CODE> ...'} on Redis 7.2 and later, a string on 7.0.
local function failure_code(failure)
  local text = type(failure) == 'table' and failure.err or failure
  return type(text) == 'string' and string.match(text, '^(%u+) ') or nil
end
-- include: includes/guard.lua
-- The library-wide guard: no raw Redis or Lua error ever reaches a caller, and no refusal after a
-- write goes unnoticed.
--
-- `redis` below shadows the global API table for every line of the library: its `call` notes the
-- first command of the current call that is not in CALL.READS (a write or a PUBLISH) before
-- passing it on. Its other fields pass on to the global's (the load-time sandbox has no
-- setmetatable, and the global is the load-time API while the library loads, the full one when
-- a function runs): the library uses only these four.
local CALL = {wrote = false}
CALL.READS = {EXISTS = true, GET = true, HGET = true, HGETALL = true, HMGET = true, HEXISTS = true,
  HLEN = true, LRANGE = true, LLEN = true, SMEMBERS = true, SISMEMBER = true, SCARD = true, TIME = true,
  TYPE = true, PTTL = true, PEXPIRETIME = true, XINFO = true, XLEN = true, XPENDING = true, XRANGE = true,
  XREVRANGE = true, ZRANGE = true, ZRANK = true, ZSCORE = true, ZCARD = true, ZCOUNT = true,
  MGET = true, SMISMEMBER = true}
local redis = {
  call = function(command, ...)
    if not CALL.wrote and not CALL.READS[command] then
      CALL.wrote = true
    end
    return redis.call(command, ...)
  end,
  error_reply = function(message) return redis.error_reply(message) end,
  sha1hex = function(text) return redis.sha1hex(text) end,
  register_function = function(spec) return redis.register_function(spec) end,
}

-- guard(callback): wrap a function so that raise() becomes redis.error_reply('<CODE> <message>')
-- without the script-location suffix Redis appends to errors. Any other error (a raw Redis or
-- Lua error: a defect), and a raise() after the call's first write (the library validates
-- everything before writing, so that too is a defect: Redis does not roll a function back), is
-- the coded error INTERNAL, saying whether something was written. An ACL refusal (NOPERM) of
-- a command before the first write keeps Redis's code: the user lacks a permission.
local function guard(callback)
  return function(keys, args)
    CALL.wrote = false
    local ok, result = pcall(callback, keys, args)
    if ok then
      return result
    end
    local coded = type(result) == 'table' and result.agentfn_code
    if coded and not CALL.wrote then
      return redis.error_reply(coded .. ' ' .. result.message)
    end
    local raw = type(result) == 'table' and result.err
    if not CALL.wrote and type(raw) == 'string' and string.find(raw, '^NOPERM ') then
      return redis.error_reply(raw) -- an ACL refusal before any write: Redis's own code
    end
    local detail = coded and (coded .. ' ' .. result.message) or (type(result) == 'table' and result.err)
      or result
    return redis.error_reply(ERR.INTERNAL .. ' internal defect, '
      .. (CALL.wrote and 'after a write (the call may be partly applied): ' or 'nothing was written: ')
      .. tostring(detail))
  end
end
-- include: includes/clock.lua
-- now_ms(): the server's clock in milliseconds (TIME), the only clock the library trusts.
-- ms_text(ms): the decimal text of a whole number of milliseconds, for redis.call arguments
-- (redis.call converts a number argument with snprintf('%.17g') on every call, which is slow).
-- The clock's last reading is kept with its text, built from TIME's reply (text already), so
-- ms_text(now) costs a comparison; so is the last other time converted (a claim gives its tasks
-- the same lease deadline).
local CLOCK = {}
local function now_ms()
  local time = redis.call('TIME')
  local text = time[1] .. string.sub('00000' .. time[2], -6, -4)
  CLOCK.ms, CLOCK.text = tonumber(text), text
  return CLOCK.ms
end

local function ms_text(ms)
  if ms == CLOCK.ms then
    return CLOCK.text
  end
  if ms ~= CLOCK.other_ms then
    CLOCK.other_ms, CLOCK.other_text = ms, string.format('%d', ms)
  end
  return CLOCK.other_text
end
-- include: includes/constant_text.lua
-- constant_text(value): the decimal text of a whole-number constant (a DEFAULTS or LIMITS value),
-- converted once per library load and kept (the load-time sandbox has no tostring), for
-- redis.call arguments: redis.call converts a number argument with snprintf on every call.
local CONSTANT_TEXT = {}
local function constant_text(value)
  local text = CONSTANT_TEXT[value]
  if not text then
    text = string.format('%d', value)
    CONSTANT_TEXT[value] = text
  end
  return text
end
-- include: includes/keys.lua
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
-- include: includes/config.lua
-- CONFIG: the namespace's settings, set by an operator in the meta hash
-- (HSET agentfn:{<ns>}:meta <name> <ms>); a missing or malformed value means DEFAULTS[name].
-- Read, never written, by the library: agent_retention_ms (how long a lapsed agent's record is
-- kept) and dead_retention_ms (how long a dead letter and its task's record are kept).
local CONFIG = {}

-- CONFIG.duration(root, name): the namespace's value of a duration setting (ms, 0 to
-- LIMITS.duration_ms), else its default.
function CONFIG.duration(root, name)
  local value = redis.call('HGET', K.meta(root), name)
  local number = value and string.find(value, '^%d+$') and #value <= 16 and tonumber(value)
  if number and number <= LIMITS.duration_ms then
    return number
  end
  return DEFAULTS[name]
end
-- include: includes/strict_json.lua
-- JSON.check(text, what): raise BADARG unless `text` is exactly one JSON value as RFC 8259 defines
-- it, with no object holding the same key twice (at any depth) and nesting at most
-- LIMITS.json_depth deep. cjson.decode lets through NaN, Infinity, hex, leading zeros and '+',
-- '1.', raw control characters, invalid UTF-8 and anything after a NUL; a client decoding such a
-- text later fails after the call committed. No writes.
--
-- Bounded per call: the JSON arguments of one call hold at most LIMITS.json_values values and
-- object keys in all (LIMIT beyond), whatever their shape: the walk costs about 0.35 µs a value
-- or key, so 64 KiB of `[0,0,...]` (32,767 values) would take ~12 ms where 64 KiB of text takes
-- well under 1.
-- JSON.new_call() (check_root, the first check of every function) starts each call's budget.
--
-- Kept fast (Lua's pattern matcher costs ~10 ns a position tried, ~3 ns a byte in an anchored
-- run of a class whose first range matches, a plain string.find runs at memchr's speed): one
-- anchored run over the whole text finds any control character other than \t \n \r (invalid
-- anywhere) and any non-ASCII byte (then JSON.well_formed runs: one gsub per form of character
-- that occurs; the slow search for the first bad byte only on a refusal); the one pass over the
-- structure then finds the end of each string with plain finds (the closing quote, and the next
-- backslash, \t, \n, \r, each remembered until passed), makes no table per value, and one table
-- of keys per nesting depth (reused by the objects met at that depth).
local JSON = {}
do
  -- string.find, .byte, .sub, .gsub, set by the first check (the load-time sandbox has no
  -- `string`).
  local find, byte, sub, gsub, NOWHERE
  -- How many more JSON values this call's arguments may hold (JSON.new_call sets it).
  local values_left = 0

  -- JSON.new_call(): a new call: its JSON arguments may hold LIMITS.json_values values in all.
  function JSON.new_call()
    values_left = LIMITS.json_values
  end
  local function bind()
    find, byte, sub, gsub, NOWHERE = string.find, string.byte, string.sub, string.gsub, math.huge
  end

  -- The bytes JSON allows outside strings and in them, printable ASCII first (the pattern
  -- matcher tries a class's ranges in order): no control character but \t \n \r, no non-ASCII.
  local PLAIN_RUN = '^[ -\127\t\n\r]*'

  -- The bytes that never occur in UTF-8; the lead bytes of 4-byte forms, of 3-byte forms, of
  -- either, of 2-byte forms.
  local NEVER = {'\192', '\193', '\245', '\246', '\247', '\248', '\249', '\250', '\251', '\252',
    '\253', '\254', '\255'}
  local LEADS4 = {'\240', '\241', '\242', '\243', '\244'}
  local LEADS3 = {'\224', '\225', '\226', '\227', '\228', '\229', '\230', '\231', '\232', '\233',
    '\234', '\235', '\236', '\237', '\238', '\239'}
  local LEADS34 = {'\224', '\225', '\226', '\227', '\228', '\229', '\230', '\231', '\232', '\233',
    '\234', '\235', '\236', '\237', '\238', '\239', '\240', '\241', '\242', '\243', '\244'}
  local LEADS2 = {'\194', '\195', '\196', '\197', '\198', '\199', '\200', '\201', '\202', '\203',
    '\204', '\205', '\206', '\207', '\208', '\209', '\210', '\211', '\212', '\213', '\214',
    '\215', '\216', '\217', '\218', '\219', '\220', '\221', '\222', '\223'}
  -- The fast path (JSON.well_formed): each form of a multi-byte character, longest first, as the
  -- lead bytes one of which must occur for it to be looked for and the pattern of one character
  -- whose lead byte and continuation bytes are in range (the second byte's narrower range after
  -- E0, ED, F0, F4 is SECOND_BYTE's).
  local FORMS = {
    {LEADS4, '[\240-\244][\128-\191][\128-\191][\128-\191]'},
    {LEADS3, '[\224-\239][\128-\191][\128-\191]'},
    {LEADS2, '[\194-\223][\128-\191]'},
  }
  -- The lead bytes whose second byte has a narrower range than 80-BF, each with the pattern of
  -- the lead byte and a second byte out of that range: overlong 3- and 4-byte forms, surrogates,
  -- beyond U+10FFFF.
  local SECOND_BYTE = {
    {'\224', '\224[\128-\159]'},
    {'\237', '\237[\160-\191]'},
    {'\240', '\240[\128-\143]'},
    {'\244', '\244[\144-\191]'},
  }
  -- Each other way UTF-8 can break: a pattern, the offset of the bad byte in its match, whether
  -- it looks at the text's last 3 bytes only, and the bytes one of which must occur for it to
  -- match (nil: it always runs).
  local BROKEN = {
    {'^[\128-\191]', 0, false}, -- a continuation byte first
    {'[%z\1-\127][\128-\191]', 1, false}, -- a continuation byte after an ASCII byte
    {'[\194-\244][%z\1-\127\192-\255]', 0, false}, -- a lead byte without its continuation bytes
    {'[\224-\244][\128-\191][%z\1-\127\192-\255]', 0, false, LEADS34},
    {'[\240-\244][\128-\191][\128-\191][%z\1-\127\192-\255]', 0, false, LEADS4},
    {'[\194-\244]$', 0, true}, -- ... at the end of the text
    {'[\224-\244][\128-\191]$', 0, true, LEADS34},
    {'[\240-\244][\128-\191][\128-\191]$', 0, true, LEADS4},
    {'[\194-\223][\128-\191][\128-\191]', 0, false}, -- a lead byte with too many
    {'[\224-\239][\128-\191][\128-\191][\128-\191]', 0, false, LEADS34},
    {'[\240-\244][\128-\191][\128-\191][\128-\191][\128-\191]', 0, false, LEADS4},
  }
  for index = 1, #SECOND_BYTE do -- overlong 3-byte, surrogate, overlong 4-byte, beyond U+10FFFF
    BROKEN[#BROKEN + 1] = {SECOND_BYTE[index][2], 0, false, {SECOND_BYTE[index][1]}}
  end

  -- The escapes other than \u, by the byte after the backslash: " \ / b f n r t.
  local ESCAPES = {[34] = true, [92] = true, [47] = true, [98] = true, [102] = true, [110] = true,
    [114] = true, [116] = true}
  -- The literals, by their first byte.
  local LITERALS = {[116] = 'true', [102] = 'false', [110] = 'null'}

  -- occurs(text, chars): whether any of the one-byte strings occurs in `text`.
  local function occurs(text, chars)
    for index = 1, #chars do
      if find(text, chars[index], 1, true) then
        return true
      end
    end
    return false
  end

  -- JSON.fail(what, reason, at): the BADARG refusal naming the argument and the byte offset.
  local function fail(what, reason, at)
    raise(ERR.BADARG, what .. ' is not valid JSON: ' .. reason .. ' at byte ' .. (at - 1))
  end

  -- first_of(text, chars): the first position of any of the one-byte strings, or nil.
  local function first_of(text, chars)
    local first
    for index = 1, #chars do
      local at = find(text, chars[index], 1, true)
      if at and (not first or at < first) then
        first = at
      end
    end
    return first
  end

  -- JSON.well_formed(text): `text` with each character of 2 to 4 bytes that is well-formed UTF-8
  -- (RFC 3629) replaced by '.', or nil when a lead byte's second byte is out of its range. ASCII
  -- bytes stay as they are, so any non-ASCII byte left over is part of no well-formed character.
  -- One gsub per form whose lead bytes occur, longest form first (a match starts at a lead byte
  -- and takes its continuation bytes, and the '.' of an earlier form joins no later match; so
  -- when nothing non-ASCII is left, the text is ASCII and well-formed characters end to end).
  function JSON.well_formed(text)
    if not find then
      bind()
    end
    for index = 1, #SECOND_BYTE do
      if find(text, SECOND_BYTE[index][1], 1, true) and find(text, SECOND_BYTE[index][2]) then
        return nil
      end
    end
    for index = 1, #FORMS do
      if occurs(text, FORMS[index][1]) then
        text = gsub(text, FORMS[index][2], '.')
      end
    end
    return text
  end

  -- first_broken(text): the position of the first byte of `text` that breaks UTF-8. Rather
  -- than decode it character by character, look for each way it can be broken (NEVER, BROKEN),
  -- one pattern run each; a form's patterns run only when its lead bytes occur (plain finds tell).
  local function first_broken(text)
    local bad, seen = first_of(text, NEVER), {}
    local tail = sub(text, -3)
    for index = 1, #BROKEN do
      local pattern, offset, at_end, leads = BROKEN[index][1], BROKEN[index][2], BROKEN[index][3], BROKEN[index][4]
      if leads and seen[leads] == nil then
        seen[leads] = occurs(text, leads)
      end
      if not leads or seen[leads] then
        local at = find(at_end and tail or text, pattern)
        at = at and at + offset + (at_end and #text - #tail or 0)
        if at and (not bad or at < bad) then
          bad = at
        end
      end
    end
    return bad
  end

  -- JSON.check_utf8(text, what): raise BADARG unless `text` is well-formed UTF-8 (RFC 3629),
  -- naming the first bad byte. Text that JSON.well_formed reduces to ASCII is; any other is
  -- searched by first_broken.
  function JSON.check_utf8(text, what)
    if not find then
      bind()
    end
    local _, ascii = find(text, '^[^\128-\255]*')
    if ascii >= #text then
      return
    end
    local reduced = JSON.well_formed(text)
    if reduced then
      _, ascii = find(reduced, '^[^\128-\255]*')
      if ascii >= #reduced then
        return
      end
    end
    local bad = first_broken(text)
    if bad then
      raise(ERR.BADARG, what .. ' is not valid UTF-8 at byte ' .. (bad - 1))
    end
  end

  -- skip(text, at): the position of the first byte at or after `at` that is not JSON whitespace.
  local function skip(text, at)
    local next_byte = byte(text, at)
    if next_byte == 32 or next_byte == 10 or next_byte == 13 or next_byte == 9 then
      local _, last = find(text, '^[ \t\n\r]*', at)
      return last + 1
    end
    return at
  end

  -- The next backslash, \n, \r and \t at or after the last position asked for (NOWHERE when
  -- there is none): reset by each check, moved on by plain finds when passed.
  local next_backslash, next_newline, next_return, next_tab

  -- check_plain(text, from, before, what): no \n, \r or \t in [from, before) (the only control
  -- characters the whole-text run lets through: they are whitespace, but not inside a string).
  local function check_plain(text, from, before, what)
    if next_newline < from then
      next_newline = find(text, '\n', from, true) or NOWHERE
    end
    if next_return < from then
      next_return = find(text, '\r', from, true) or NOWHERE
    end
    if next_tab < from then
      next_tab = find(text, '\t', from, true) or NOWHERE
    end
    if next_newline < before or next_return < before or next_tab < before then
      fail(what, 'raw control character in a string', math.min(next_newline, next_return, next_tab))
    end
  end

  -- string_end(text, quote, what): the position just after the string whose opening quote is at
  -- `quote`, and whether it holds an escape.
  local function string_end(text, quote, what)
    local at, escaped = quote + 1, false
    while true do
      local close = find(text, '"', at, true)
      if not close then
        fail(what, 'unterminated string', quote)
      end
      if next_backslash < at then
        next_backslash = find(text, '\\', at, true) or NOWHERE
      end
      if next_backslash > close then
        check_plain(text, at, close, what)
        return close + 1, escaped
      end
      local slash = next_backslash
      check_plain(text, at, slash, what)
      escaped = true
      local kind = byte(text, slash + 1)
      if kind == 117 then
        local hex = find(text, '^%x%x%x%x', slash + 2) and tonumber(sub(text, slash + 2, slash + 5), 16)
        if not hex then
          fail(what, 'bad \\u escape', slash)
        elseif hex >= 0xDC00 and hex <= 0xDFFF then
          fail(what, 'lone low surrogate escape', slash)
        elseif hex >= 0xD800 and hex <= 0xDBFF then
          if not find(text, '^\\u[dD][c-fC-F]%x%x', slash + 6) then
            fail(what, 'high surrogate escape without its low surrogate', slash)
          end
          at = slash + 12
        else
          at = slash + 6
        end
      elseif ESCAPES[kind] then
        at = slash + 2
      else
        fail(what, 'bad escape', slash)
      end
    end
  end

  -- scalar_end(text, at, first, what): the position just after the number or literal at `at`
  -- (its first byte `first`); what follows is checked by the caller.
  local function scalar_end(text, at, first, what)
    if first == 45 or (first >= 48 and first <= 57) then
      local _, last = find(text, '^%-?%d+', at)
      if not last then
        fail(what, 'bad number', at)
      end
      local lead = first == 45 and at + 1 or at
      if last > lead and byte(text, lead) == 48 then
        fail(what, 'number with a leading zero', at)
      end
      local after = byte(text, last + 1)
      if after == 46 then
        _, last = find(text, '^%.%d+', last + 1)
        if not last then
          fail(what, 'bad number', at)
        end
        after = byte(text, last + 1)
      end
      if after == 101 or after == 69 then
        _, last = find(text, '^[eE][%-+]?%d+', last + 1)
        if not last then
          fail(what, 'bad number', at)
        end
      end
      return last + 1
    end
    local literal = LITERALS[first]
    if literal and sub(text, at, at + #literal - 1) == literal then
      return at + #literal
    end
    fail(what, 'unexpected character', at)
  end

  -- key(text, at, keys, serial, what): read the object key whose quote should be at `at`, refuse
  -- a key this object (number `serial`) has already (keys: key -> serial of the object that had
  -- it last, shared by the objects at one depth), and return the position of the member's value.
  -- over_budget(what): LIMIT: the call's JSON arguments hold more values and keys than
  -- LIMITS.json_values.
  local function over_budget(what)
    raise(ERR.LIMIT, what .. ': the JSON arguments of one call may hold at most ' .. LIMITS.json_values
      .. ' values and object keys in all')
  end

  local function key(text, at, keys, serial, what)
    values_left = values_left - 1 -- a key costs about as much as a value
    if values_left < 0 then
      over_budget(what)
    end
    -- The common key (no escape, no control character) and its colon in one find; any other
    -- the long way.
    local _, last, name = find(text, '^"([^"\\%c]*)"[ \t\n\r]*:', at)
    if not name then
      if byte(text, at) ~= 34 then
        fail(what, 'expected an object key', at)
      end
      local after, escaped = string_end(text, at, what)
      name = escaped and cjson.decode(sub(text, at, after - 1)) or sub(text, at + 1, after - 2)
      last = skip(text, after)
      if byte(text, last) ~= 58 then
        fail(what, 'expected : after an object key', last)
      end
    end
    if keys[name] == serial then
      fail(what, 'duplicate object key ' .. string.format('%q', sub(name, 1, 64)), at)
    end
    keys[name] = serial
    return skip(text, last + 1)
  end

  -- JSON.check(text, what): see the top of this file. `text` is a string.
  function JSON.check(text, what)
    if not find then
      bind()
    end
    local _, plain = find(text, PLAIN_RUN)
    if plain < #text then
      -- Non-ASCII text (or a control character): well-formed characters as '.', the rest plain
      -- as a whole; else find the first control character or bad byte the slow way.
      local reduced, reach = JSON.well_formed(text), -1
      if reduced then
        _, reach = find(reduced, PLAIN_RUN)
      end
      if not reduced or reach < #reduced then
        local control = find(text, '[%z\1-\8\11\12\14-\31]', plain + 1)
        if control then
          fail(what, 'raw control character', control)
        end
        local bad = first_broken(text)
        if bad then
          fail(what, 'invalid UTF-8', bad)
        end
      end
    end
    next_backslash, next_newline, next_return, next_tab = 0, 0, 0, 0
    -- Per open container, by depth: the object's serial number, or false for an array; the key
    -- tables by depth.
    local open, keys, depth, serial = {}, {}, 0, 0
    local at = skip(text, 1)
    while true do
      -- A value starts at `at`.
      values_left = values_left - 1
      if values_left < 0 then
        over_budget(what)
      end
      local first = byte(text, at)
      local closed = true
      if first == 123 or first == 91 then
        if depth == LIMITS.json_depth then
          fail(what, 'nested deeper than ' .. LIMITS.json_depth, at)
        end
        local inside = skip(text, at + 1)
        if byte(text, inside) == first + 2 then -- {} or []
          at = inside + 1
        else
          depth = depth + 1
          closed = false
          if first == 123 then
            serial = serial + 1
            open[depth] = serial
            keys[depth] = keys[depth] or {}
            at = key(text, inside, keys[depth], serial, what)
          else
            open[depth] = false
            at = inside
          end
        end
      elseif first == 34 then
        at = string_end(text, at, what)
      elseif first then
        at = scalar_end(text, at, first, what)
      else
        fail(what, 'expected a value', at)
      end
      -- After a value: close containers until a comma asks for the next value.
      while closed do
        local next_byte = byte(text, at)
        if next_byte == 32 or next_byte == 10 or next_byte == 13 or next_byte == 9 then
          at = skip(text, at)
          next_byte = byte(text, at)
        end
        if depth == 0 then
          if at <= #text then
            fail(what, 'unexpected text after the value', at)
          end
          return
        end
        local object = open[depth]
        if next_byte == 44 then
          at = skip(text, at + 1)
          if object then
            at = key(text, at, keys[depth], object, what)
          end
          closed = false
        elseif (next_byte == 125 and object) or (next_byte == 93 and object == false) then
          depth = depth - 1
          at = at + 1
        else
          fail(what, object and 'expected , or } in an object' or 'expected , or ] in an array', at)
        end
      end
    end
  end
end
-- include: includes/validate.lua
-- Validation helpers: each returns the parsed value or raise()s BADARG. No writes here.

-- quoted(value): a value for an error message: quoted, at most its first 64 bytes.
local function quoted(value)
  local text = tostring(value)
  return string.format('%q', string.sub(text, 1, 64)) .. (#text > 64 and ' (' .. #text .. ' bytes)' or '')
end

-- check_root(keys): exactly one key, the namespace root `agentfn:{<ns>}`; returns root, ns.
-- The first check of every function, so it also starts the call's JSON budget (JSON.new_call).
local function check_root(keys)
  JSON.new_call()
  if #keys ~= 1 then
    raise(ERR.BADARG, 'expected 1 key (the namespace root agentfn:{<ns>}), got ' .. #keys)
  end
  local namespace = string.match(keys[1], '^agentfn:{([%w_%.%-]+)}$')
  if not namespace or #namespace > LIMITS.namespace_length then
    raise(ERR.BADARG, 'key must be agentfn:{<namespace>} with a namespace of 1-'
      .. LIMITS.namespace_length .. ' letters, digits, _ . -')
  end
  return keys[1], namespace
end

-- check_schema(root, namespace): the namespace was migrated to the schema this library expects,
-- and (on Redis Cluster) its slot is not being moved, in one read: MGET of the root and of the
-- schema key. The root key never exists, so this multi-key command fails on a node that imports
-- or exports the slot (Redis refuses a multi-key command with a missing key there): MOVING,
-- before any write, instead of running against a half-moved namespace. Elsewhere it reads the
-- schema key, which the migration runner's record script sets with the meta hash's
-- schema_version; a namespace recorded without it (an older runner, or schema_version written
-- by hand) is checked by the HGET of that field, one command more.
local function check_schema(root, namespace)
  local ok, reply = pcall(redis.call, 'MGET', root, K.schema(root))
  if not ok then
    local text = type(reply) == 'table' and reply.err or tostring(reply)
    if failure_code(reply) == 'NOPERM' or string.find(text, "can't run this command", 1, true) then
      error(reply, 0) -- an ACL refusal (NOPERM; on Redis 7.0 an ERR saying so), not a move
    end
    raise(ERR.MOVING, 'namespace ' .. namespace .. ' is being moved between cluster nodes: retry')
  end
  if tonumber(reply[2]) == SCHEMA_VERSION then
    return
  end
  local deployed = tonumber(redis.call('HGET', K.meta(root), 'schema_version') or '0')
  if deployed ~= SCHEMA_VERSION then
    raise(ERR.VERSION, 'namespace ' .. namespace .. ' has schema ' .. deployed .. ', library expects '
      .. SCHEMA_VERSION .. ': run agentfn migrate --namespace ' .. namespace)
  end
end

-- check_arity(args, count, names): at least `count` positional values, then NAME value pairs.
local function check_arity(args, count, names)
  if #args < count then
    raise(ERR.BADARG, 'expected ' .. count .. ' positional arguments (' .. names .. '), got ' .. #args)
  end
  if (#args - count) % 2 ~= 0 then
    raise(ERR.BADARG, 'options must come in NAME value pairs after the ' .. count .. ' positional arguments')
  end
end

-- check_token(value, what, pattern, limit, allowed): a non-empty name that can be part of a key;
-- `allowed` describes the pattern's characters for the error message.
local function check_token(value, what, pattern, limit, allowed)
  if value == nil or value == '' then
    raise(ERR.BADARG, what .. ' must not be empty')
  end
  if #value > limit then
    raise(ERR.BADARG, what .. ' is longer than ' .. limit .. ' bytes')
  end
  if not string.find(value, pattern) then
    raise(ERR.BADARG, what .. ' may contain only ' .. allowed)
  end
  return value
end

-- check_id(value, what): an id (agent, task, workflow, step, key): letters, digits, _ . - @.
local function check_id(value, what)
  return check_token(value, what, '^[%w_%.%-@]+$', LIMITS.id_length, 'letters, digits, _ . - @')
end

-- check_secret(value): an agent's secret: 32 to 128 bytes of letters, digits, _ - (hex or
-- base64url; its entropy is the caller's duty). The message never shows the value.
local function check_secret(value)
  if type(value) ~= 'string' or #value < 32 or #value > 128 or not string.find(value, '^[%w_%-]+$') then
    raise(ERR.BADARG, 'secret must be 32 to 128 bytes of letters, digits, _ - (e.g. 32 hex digits)')
  end
  return value
end

-- check_capability(value, what): a capability name: letters, digits, _ . -.
local function check_capability(value, what)
  return check_token(value, what, '^[%w_%.%-]+$', LIMITS.capability_length, 'letters, digits, _ . -')
end

-- check_int(value, what, min, max): a decimal integer within [min, max], written canonically (no
-- sign but a leading -, no leading zeros, no -0, at most 16 characters).
local function check_int(value, what, min, max)
  if type(value) ~= 'string' or #value > 16 or not (value == '0' or string.find(value, '^%-?[1-9]%d*$')) then
    raise(ERR.BADARG, what .. ' must be an integer, got ' .. quoted(value))
  end
  local number = tonumber(value)
  if number < min or number > max then
    raise(ERR.BADARG, what .. ' must be between ' .. min .. ' and ' .. max .. ', got ' .. value)
  end
  return number
end

-- check_json(value, what, kind): strict JSON (RFC 8259, no duplicate keys: JSON.check) within
-- the size limit; kind 'object' demands an object. The caller stores the original text.
local function check_json(value, what, kind)
  if type(value) ~= 'string' or value == '' then
    raise(ERR.BADARG, what .. ' must be JSON text')
  end
  if #value > LIMITS.json_bytes then
    raise(ERR.LIMIT, what .. ' is larger than ' .. LIMITS.json_bytes .. ' bytes')
  end
  JSON.check(value, what)
  if kind == 'object' and not string.find(value, '^[ \t\n\r]*{') then
    raise(ERR.BADARG, what .. ' must be a JSON object')
  end
end

-- check_items(args, width, limit, names): the prologue of a function that takes many items:
-- ARGV[1] a count of 1 to `limit`, then that many items of `width` values each (`names` names
-- them, e.g. 'capability, payload'), then options in pairs. Returns the count.
local function check_items(args, width, limit, names)
  if #args < 1 then
    raise(ERR.BADARG, 'expected count, then count items of ' .. names)
  end
  local count = check_int(args[1], 'count', 1, limit)
  check_arity(args, 1 + width * count, 'count, then ' .. count .. ' items of ' .. names)
  return count
end

-- check_json_item(value, index, name, plural, total): check_json of item `index`'s JSON
-- (`name`: 'payload', 'result'), after the items before it held `total` bytes: the items of
-- one call hold json_bytes in all (LIMIT naming the `plural`). Returns the new total.
local function check_json_item(value, index, name, plural, total)
  total = total + #value
  if total > LIMITS.json_bytes then
    raise(ERR.LIMIT, 'the ' .. plural .. ' of one call are larger than ' .. LIMITS.json_bytes .. ' bytes in all')
  end
  check_json(value, name .. ' of item ' .. index)
  return total
end

-- check_text(value, what, limit): free text (a failed attempt's error) of at most `limit` bytes
-- that is well-formed UTF-8, so that every client can decode it.
local function check_text(value, what, limit)
  if #value > limit then
    raise(ERR.LIMIT, what .. ' is longer than ' .. limit .. ' bytes')
  end
  JSON.check_utf8(value, what)
  return value
end

-- check_enum(value, what, allowed): one of the allowed strings (a list).
local function check_enum(value, what, allowed)
  for _, candidate in ipairs(allowed) do
    if value == candidate then
      return value
    end
  end
  raise(ERR.BADARG, what .. ' must be one of ' .. table.concat(allowed, ', ') .. ', got '
    .. quoted(value))
end

-- parse_options(args, first, spec): NAME value pairs from args[first]; spec maps each known
-- upper-case NAME to a checker function(value, name) that returns the parsed value.
local function parse_options(args, first, spec)
  local options = {}
  for index = first, #args, 2 do
    local name = string.upper(args[index])
    local checker = spec[name]
    if not checker then
      raise(ERR.BADARG, 'unknown option ' .. quoted(args[index]))
    end
    if options[name] ~= nil then
      raise(ERR.BADARG, 'option ' .. name .. ' given twice')
    end
    options[name] = checker(args[index + 1], name)
  end
  return options
end

-- Option checkers for parse_options specs.
local OPT = {}
function OPT.duration(value, name) return check_int(value, name, 0, LIMITS.duration_ms) end
function OPT.positive_duration(value, name) return check_int(value, name, 1, LIMITS.duration_ms) end
function OPT.json(value, name) check_json(value, name) return value end
function OPT.object(value, name) check_json(value, name, 'object') return value end
function OPT.id(value, name) return check_id(value, name) end
function OPT.yes_no(value, name) return check_enum(value, name, {'yes', 'no'}) == 'yes' end
-- A W3C trace context: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>, lower case, ids
-- not all zeros (https://www.w3.org/TR/trace-context/#traceparent-header).
function OPT.traceparent(value, name)
  local trace_id, span_id = string.match(value, '^00%-(%x+)%-(%x+)%-%x%x$')
  if not trace_id or #trace_id ~= 32 or #span_id ~= 16 or string.find(value, '%u')
    or string.find(trace_id, '^0+$') or string.find(span_id, '^0+$') then
    raise(ERR.BADARG, name .. ' must be a W3C traceparent 00-<32 hex>-<16 hex>-<2 hex> (lower case, ids'
      .. ' not all zeros), got ' .. quoted(value))
  end
  return value
end
function OPT.count(limit)
  return function(value, name) return check_int(value, name, 1, limit) end
end
-- include: includes/records.lua
-- Record helpers: flat field/value arrays, the reply shape of every function
-- (docs/ARCHITECTURE.md rule 9).

-- hash_to_table(flat): turn an HGETALL reply into a Lua table.
local function hash_to_table(flat)
  local record = {}
  for index = 1, #flat, 2 do
    record[flat[index]] = flat[index + 1]
  end
  return record
end

-- split_csv(text): the non-empty items of a comma-separated list, in order.
local function split_csv(text)
  local items = {}
  for item in string.gmatch(text, '[^,]+') do
    items[#items + 1] = item
  end
  return items
end

-- flat_reply(fields, values): fields paired with values (an HMGET reply in the same order) as a
-- flat field/value array; missing values are ''.
local function flat_reply(fields, values)
  local reply = {}
  for index, field in ipairs(fields) do
    reply[#reply + 1] = field
    reply[#reply + 1] = values[index] or ''
  end
  return reply
end
-- include: includes/emit.lua
-- emit(root, kind, fields): append a transition to the capped namespace event stream. `fields`
-- is a flat list whose first pair names the subject (for example {'task', id, 'state',
-- 'queued'}). Watchers (agentfn top, events --follow, the dashboard) block on the stream with
-- XREAD, so no Pub/Sub message goes with it (one PUBLISH per transition was 3 of a task life's
-- commands). It runs on every transition, so it is kept cheap: every argument is text
-- (redis.call converts a number on each call), and the stream name of each namespace is built
-- once (EVENTS_KEYS).
local EVENTS_KEYS = {}
local function emit(root, kind, fields)
  local events = EVENTS_KEYS[root]
  if not events then
    events = K.events(root)
    EVENTS_KEYS[root] = events
  end
  redis.call('XADD', events, 'MAXLEN', '~', constant_text(DEFAULTS.events_max), '*', 'type', kind,
    unpack(fields))
end
-- include: includes/agent_record.lua
-- agent_reply(root, agent_id): an agent's record as a flat field/value array (HGETALL order is
-- not stable, so the fields are listed explicitly; never the secret's hash, secret_sha1).
local AGENT_FIELDS = {'id', 'capabilities', 'metadata', 'status', 'ttl_ms', 'registered_ms',
  'heartbeat_ms', 'expires_ms'}
local function agent_reply(root, agent_id)
  return flat_reply(AGENT_FIELDS, redis.call('HMGET', K.agent(root, agent_id), unpack(AGENT_FIELDS)))
end

-- owned_agent(root, agent_id, secret): the agent's record table (status, expires_ms,
-- capabilities, ttl_ms) if it is registered and, when `secret` is given, sha1hex(secret) is its
-- stored secret_sha1 (an agent registered before 3.0 has none: it can prove nothing);
-- raise()s NOTFOUND or DENIED otherwise (naming the agent, never the secret). No writes.
local function owned_agent(root, agent_id, secret)
  local record = redis.call('HMGET', K.agent(root, agent_id), 'status', 'expires_ms', 'capabilities', 'ttl_ms',
    'secret_sha1')
  if not record[1] then
    raise(ERR.NOTFOUND, 'agent ' .. agent_id .. ' is not registered: register it first (an agent with no'
      .. ' capabilities takes only messages and direct tasks)')
  end
  if secret and record[5] ~= redis.sha1hex(secret) then
    raise(ERR.DENIED, 'agent ' .. agent_id .. ': the secret is not the one it registered with')
  end
  return {status = record[1], expires_ms = tonumber(record[2]), capabilities = record[3] or '',
    ttl_ms = tonumber(record[4])}
end

-- live_agent(root, agent_id, now, secret): the agent's record table (as owned_agent, which
-- checks `secret` when given) if it is also live; raise()s NOTFOUND, DENIED or LAPSED otherwise.
-- No writes.
local function live_agent(root, agent_id, now, secret)
  local agent = owned_agent(root, agent_id, secret)
  if agent.status ~= 'live' or agent.expires_ms <= now then
    raise(ERR.LAPSED, 'agent ' .. agent_id .. ' lapsed: register it again')
  end
  return agent
end
-- include: includes/task_core.lua
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
-- include: includes/task_claim.lua
-- Claiming (TASK.claim and its parts), used by agentfn_task_claim and by the NEXT option of
-- agentfn_task_complete and agentfn_task_fail.
--
-- The parts below share `claim`, the state of one claim: root, agent_id, goal (how many tasks at
-- most), lease_ms (nil: each task's timeout_ms), key (what the tokens derive from: TASK.token), ms and ms_text (the call's time and its text,
-- converted once: every number passed to redis.call is converted on each call, so they pass
-- text), and tasks (the claimed tasks so far). They read from a `source`: {key = a work stream,
-- capability, priority}. A capability's stream holds only tasks of its capability and priority
-- (the stream is named after them), so a task read from it needs neither field read from its
-- hash; the agent's direct stream holds any (its source has no capability nor priority).
--
-- Order: the agent's direct stream first; then its capabilities' streams by priority (high,
-- normal, low). Within one priority, an agent with several capabilities takes from the stream
-- whose next undelivered entry is oldest (entry ids are times): the group's last-delivered-id
-- (XINFO GROUPS) followed by XRANGE (<id> + COUNT 1 finds each stream's next entry; ids are
-- milliseconds, so a tie goes to the capability listed first. An agent with one capability
-- reads its stream directly, without peeking.

-- TASK.take(claim, source, entry_id, task_id): start the attempt that a delivered entry stands
-- for and return the claimed task, flat, and its lease deadline (the caller adds the task to
-- the leases). An entry whose task is gone or no longer queued
-- under it (canceled meanwhile) is acknowledged, deleted and skipped (nil).
function TASK.take(claim, source, entry_id, task_id)
  local key = task_id and K.task(claim.root, task_id)
  local task
  if key and source.capability then
    task = redis.call('HMGET', key, 'state', 'entry', 'attempt', 'timeout_ms', 'payload', 'workflow', 'step', 'inputs',
      'traceparent')
  elseif key then
    task = redis.call('HMGET', key, 'state', 'entry', 'attempt', 'timeout_ms', 'payload', 'workflow', 'step', 'inputs',
      'traceparent', 'capability', 'priority')
  end
  if not task or task[1] ~= STATE.QUEUED or task[2] ~= entry_id then
    redis.call('XACK', source.key, GROUP, entry_id)
    redis.call('XDEL', source.key, entry_id)
    TASK.mark_trim(claim.root, source.key)
    return nil
  end
  local attempt = string.format('%d', tonumber(task[3]) + 1)
  local deadline = ms_text(claim.ms + (claim.lease_ms or tonumber(task[4])))
  local token = TASK.token(claim.key, task_id, attempt)
  redis.call('HSET', key, 'state', STATE.RUNNING, 'attempt', attempt, 'agent', claim.agent_id,
    'started_ms', claim.ms_text, 'lease_deadline_ms', deadline, 'token_sha1', redis.sha1hex(token))
  emit(claim.root, 'task.running', {'task', task_id, 'agent', claim.agent_id})
  return {'id', task_id, 'capability', source.capability or task[10], 'payload', task[5], 'attempt', attempt,
    'token', token, 'lease_deadline_ms', deadline, 'priority', source.priority or task[11],
    'workflow', task[6] or '', 'step', task[7] or '', 'inputs', task[8] or '', 'timeout_ms', task[4],
    'traceparent', task[9] or ''}, deadline
end

-- TASK.deliver(claim, source, count): XREADGROUP up to `count` new entries of one existing
-- stream and add the tasks they start to claim.tasks and to the leases (one ZADD for them all).
-- The agent holds them as pending entries of its consumer: no set of its tasks is kept (its
-- holdings are read back with XPENDING, see release_agent_tasks). Returns how many entries the
-- stream delivered (skipped ones included; fewer than count: it is drained).
function TASK.deliver(claim, source, count)
  local ok, reply = pcall(redis.call, 'XREADGROUP', 'GROUP', GROUP, claim.agent_id, 'COUNT',
    string.format('%d', count), 'STREAMS', source.key, '>')
  if not ok then -- NOGROUP: the stream (or its group) was deleted outside the library: nothing to read
    if failure_code(reply) == 'NOGROUP' then
      return 0
    end
    error(reply, 0)
  end
  if not reply then
    return 0
  end
  local entries, tasks = reply[1][2], claim.tasks
  if #entries == 1 then -- a claim of one: written at once (building the lists would cost more)
    local task, deadline = TASK.take(claim, source, entries[1][1], entries[1][2] and entries[1][2][2])
    if task then
      tasks[#tasks + 1] = task
      redis.call('ZADD', K.leases(claim.root), deadline, task[2])
    end
    return 1
  end
  local leases = {}
  for _, entry in ipairs(entries) do
    local task, deadline = TASK.take(claim, source, entry[1], entry[2] and entry[2][2])
    if task then
      tasks[#tasks + 1] = task
      leases[#leases + 1] = deadline
      leases[#leases + 1] = task[2]
    end
  end
  if #leases > 0 then
    redis.call('ZADD', K.leases(claim.root), unpack(leases))
  end
  return #entries
end

-- TASK.listed(root, streams): the set (a table: stream -> true) of those of `streams` that
-- exist, from one SMISMEMBER of the namespace's work streams K.streams instead of an EXISTS
-- each: the library adds a work stream to K.streams when it creates it (TASK.enqueue) and
-- removes it when it deletes it (REAP.drop_stream), so membership is existence. (A stream
-- deleted by hand is still listed until the reaper's next visit: TASK.deliver reads nothing
-- from it.)
function TASK.listed(root, streams)
  local flags = redis.call('SMISMEMBER', K.streams(root), unpack(streams))
  local listed = {}
  for index, stream in ipairs(streams) do
    if flags[index] == 1 then
      listed[stream] = true
    end
  end
  return listed
end

-- TASK.read(claim, source): claim from one stream until claim.tasks holds claim.goal tasks or
-- the stream has no undelivered entry (claim.listed: the streams that exist, TASK.listed).
function TASK.read(claim, source)
  if not claim.listed[source.key] then
    return
  end
  while #claim.tasks < claim.goal do
    local want = claim.goal - #claim.tasks
    if TASK.deliver(claim, source, want) < want then
      return
    end
  end
end

-- TASK.next_entry(stream, after): the id of the stream's first entry after id `after`, or nil.
function TASK.next_entry(stream, after)
  local entry = redis.call('XRANGE', stream, '(' .. after, '+', 'COUNT', '1')[1]
  return entry and entry[1]
end

-- TASK.group_info(stream): the fields of the consumer group GROUP of an existing stream
-- (XINFO GROUPS: name, pending, last-delivered-id...) as a table, or nil when it has none.
function TASK.group_info(stream)
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local info = hash_to_table(group)
    if info.name == GROUP then
      return info
    end
  end
  return nil
end

-- TASK.next_undelivered(stream): the id of the stream's oldest undelivered entry, or nil.
function TASK.next_undelivered(stream)
  local info = redis.call('EXISTS', stream) == 1 and TASK.group_info(stream)
  return info and TASK.next_entry(stream, info['last-delivered-id']) or nil
end

-- TASK.id_before(a, b): stream entry id a is older than b.
function TASK.id_before(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)%-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)%-(%d+)$')
  a_ms, b_ms = tonumber(a_ms), tonumber(b_ms)
  return a_ms < b_ms or (a_ms == b_ms and tonumber(a_seq) < tonumber(b_seq))
end

-- TASK.read_oldest_first(claim, sources): claim from several streams of one priority, always
-- the oldest next undelivered entry among them.
function TASK.read_oldest_first(claim, sources)
  local heads = {}
  for index, source in ipairs(sources) do
    heads[index] = claim.listed[source.key] and TASK.next_undelivered(source.key) or nil
  end
  while #claim.tasks < claim.goal do
    local best
    for index in ipairs(sources) do
      if heads[index] and (not best or TASK.id_before(heads[index], heads[best])) then
        best = index
      end
    end
    if not best then
      return
    end
    local source = sources[best]
    if TASK.deliver(claim, source, 1) == 0 then
      heads[best] = nil
    else
      heads[best] = TASK.next_entry(source.key, heads[best])
    end
  end
end

-- TASK.streams_of(root, agent_id, capabilities): every stream an agent reads from: its direct
-- stream, then its capabilities' streams (a list of names) of each priority.
function TASK.streams_of(root, agent_id, capabilities)
  local streams = {K.direct(root, agent_id)}
  for _, priority in ipairs(PRIORITIES) do
    for _, capability in ipairs(capabilities) do
      streams[#streams + 1] = K.queue(root, capability, priority)
    end
  end
  return streams
end

-- TASK.newest_id(stream): the id of the stream's newest entry; '0-0' when it has none (or does
-- not exist). XREAD returns the entries after the id it is given: none exists after the newest
-- entry, and every new one gets an id above the stream's last generated id, which is at least
-- the newest entry's (it is more when newer entries were deleted or trimmed), and above 0-0. So
-- XREAD from this id wakes exactly on the entries added later, as from the last generated id
-- (XINFO STREAM, which costs several times more).
function TASK.newest_id(stream)
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', '1')[1]
  return newest and newest[1] or '0-0'
end

-- TASK.wait_list(root, agent_id, capabilities): every stream the agent reads from, and the
-- namespace's delayed-wake stream (an entry each time a delayed task becomes the earliest due),
-- each with its newest id, flat: key, id, key, id... XREAD BLOCK with these ids returns as soon
-- as any of them gets a new entry after the claim.
function TASK.wait_list(root, agent_id, capabilities)
  local wait = {}
  local streams = TASK.streams_of(root, agent_id, capabilities)
  streams[#streams + 1] = K.delayed_wake(root)
  for _, stream in ipairs(streams) do
    wait[#wait + 1] = stream
    wait[#wait + 1] = TASK.newest_id(stream)
  end
  return wait
end

-- TASK.claim(root, agent_id, capabilities, count, lease_ms, now, key): promote due delayed tasks,
-- then claim up to `count` tasks for a live agent (`capabilities`: its stored comma-separated
-- list; `lease_ms`: nil for each task's timeout_ms; `key`: what their tokens derive from, the
-- agent's secret or the token presented to complete/fail NEXT, see TASK.token). Returns the claim reply: 'tasks', [task...],
-- 'wait', [key, id, ...], 'next_due_ms', ms|''. wait and next_due_ms are filled whenever fewer
-- than `count` tasks were claimed (every stream was drained: they are what the caller blocks on
-- for its remaining slots); next_due_ms is the earliest due time in the delayed set.
function TASK.claim(root, agent_id, capabilities, count, lease_ms, now, key)
  local claim = {root = root, agent_id = agent_id, goal = count, lease_ms = lease_ms, key = key, ms = now,
    ms_text = ms_text(now), tasks = {}}
  TASK.promote_due(root, claim.ms_text, LIMITS.promote_batch)
  local names = split_csv(capabilities)
  claim.listed = TASK.listed(root, TASK.streams_of(root, agent_id, names))
  TASK.read(claim, {key = K.direct(root, agent_id)})
  for _, priority in ipairs(PRIORITIES) do
    if #claim.tasks >= count then
      break
    end
    if #names == 1 then
      TASK.read(claim, {key = K.queue(root, names[1], priority), capability = names[1], priority = priority})
    elseif #names > 1 then
      local sources = {}
      for index, capability in ipairs(names) do
        sources[index] = {key = K.queue(root, capability, priority), capability = capability, priority = priority}
      end
      TASK.read_oldest_first(claim, sources)
    end
  end
  if #claim.tasks >= count then
    return {'tasks', claim.tasks, 'wait', {}, 'next_due_ms', ''}
  end
  local soonest = redis.call('ZRANGE', K.delayed(root), '0', '0', 'WITHSCORES')
  return {'tasks', claim.tasks, 'wait', TASK.wait_list(root, agent_id, names), 'next_due_ms', soonest[2] or ''}
end
-- include: includes/workflow_hooks.lua
-- Workflows advance inside the library. WF groups every workflow helper (here: moving steps and
-- workflows; workflow_json: JSON spans; workflow_definition: definitions and replies;
-- workflow_cancel_task: canceling a step's task), so
-- that a function needs one upvalue for all of them. The helpers run only when a function is
-- called, by which time all of those files have filled the table.
--
-- Keys of workflow <id>: the record `wf:<id>` (hash: state, policy, counters, shared context),
-- `wf:<id>:steps` (list: step ids in definition order), `wf:<id>:step:<step>` (hash: the step's
-- definition, state, current task, result) and `wf:<id>:unmet` (hash: step -> how many of its
-- dependencies have not completed yet).
local WF = {}

-- Failure policies (rendered from WorkflowPolicy in agentfn/constants.py).
WF.POLICY = WF_POLICY

-- Step states from which a step can still move; the others are final.
WF.OPEN = {[STEP_STATE.WAITING] = true, [STEP_STATE.QUEUED] = true, [STEP_STATE.INPUT_REQUIRED] = true}

-- WF.notify(root, workflow_id, kind, step_id, extra): record a workflow transition: an event
-- (workflow, step when given, then the flat `extra` fields) and the message `<kind>` or
-- `<kind> <step_id>` on the workflow's channel, which waiters subscribe to.
function WF.notify(root, workflow_id, kind, step_id, extra)
  local fields = {'workflow', workflow_id}
  if step_id then
    fields[3], fields[4] = 'step', step_id
  end
  for _, value in ipairs(extra or {}) do
    fields[#fields + 1] = value
  end
  emit(root, kind, fields)
  redis.call('PUBLISH', K.channel(root, 'wf:' .. workflow_id), step_id and (kind .. ' ' .. step_id) or kind)
end

-- WF.call_chunked(command, key, values): `command key v1 v2 ...` in slices of 1000 values (an
-- even number, so field/value pairs stay together), to stay within Lua's stack for unpack.
function WF.call_chunked(command, key, values)
  for first = 1, #values, 1000 do
    redis.call(command, key, unpack(values, first, math.min(first + 999, #values)))
  end
end

-- WF.load_step(root, workflow_id, step_id): what enqueueing a stored step needs, as a table.
function WF.load_step(root, workflow_id, step_id)
  local values = redis.call('HMGET', K.workflow_step(root, workflow_id, step_id), 'capability', 'input',
    'depends_on', 'max_attempts', 'backoff_ms', 'timeout_ms', 'priority')
  return {id = step_id, capability = values[1], input = values[2], depends_on = split_csv(values[3] or ''),
    max_attempts = tonumber(values[4]), backoff_ms = tonumber(values[5]), timeout_ms = tonumber(values[6]),
    priority = values[7] or nil}
end

-- WF.inputs(root, workflow_id, depends_on, signal, known): a task's `inputs` (JSON text): the
-- result of each dependency under its step id, plus `_signal` (the value given to
-- agentfn_wf_signal) when the step runs again after asking for input; nil for a root step that
-- was not signaled. Results are stored JSON text, joined as they are (never decoded and encoded
-- again); `known` (optional) holds the one just completed: {step = id, result = text}.
function WF.inputs(root, workflow_id, depends_on, signal, known)
  if #depends_on == 0 and not signal then
    return nil
  end
  local parts = {}
  for index, dependency in ipairs(depends_on) do
    local result = known and known.step == dependency and known.result
      or redis.call('HGET', K.workflow_step(root, workflow_id, dependency), 'result')
    parts[index] = '"' .. dependency .. '":' .. (result or 'null')
  end
  if signal then
    parts[#parts + 1] = '"_signal":' .. signal
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- WF.enqueue(root, workflow, step, now, signal, known): submit a task for a step whose
-- dependencies have all completed; the step becomes queued with that task. `workflow` has id,
-- retention_ms and traceparent (the task's; false or nil when none); `step` is a parsed or
-- loaded step (WF.load_step); signal and known as WF.inputs. Returns the task id.
function WF.enqueue(root, workflow, step, now, signal, known)
  local task_id = create_task(root, now, {
    capability = step.capability, payload = step.input, priority = step.priority, delay_ms = 0,
    max_attempts = step.max_attempts, backoff_ms = step.backoff_ms, timeout_ms = step.timeout_ms,
    retention_ms = workflow.retention_ms, traceparent = workflow.traceparent,
    workflow = workflow.id, step = step.id, inputs = WF.inputs(root, workflow.id, step.depends_on, signal, known),
  })
  redis.call('HSET', K.workflow_step(root, workflow.id, step.id), 'state', STEP_STATE.QUEUED, 'task', task_id,
    'queued_ms', now)
  return task_id
end

-- WF.finish(root, workflow, state, now, extra): the workflow reaches a final state: record it,
-- let all of its keys expire after its retention time, and tell the waiters. It moves from the
-- running index to its final state's (K.workflows, scored by creation time), and its place in
-- K.workflow_expiry ('<state> <id>' scored by when its keys expire) lets agentfn_reap drop it
-- from that index once the keys are gone.
function WF.finish(root, workflow, state, now, extra)
  local id = workflow.id
  local created_ms = redis.call('HGET', K.workflow(root, id), 'created_ms') or now
  redis.call('HSET', K.workflow(root, id), 'state', state, 'finished_ms', now)
  local retention_ms = workflow.retention_ms
  redis.call('ZREM', K.workflows(root, WF_STATE.RUNNING), id)
  redis.call('ZADD', K.workflows(root, state), created_ms, id)
  local expires_ms = now + retention_ms
  redis.call('ZADD', K.workflow_expiry(root), expires_ms, state .. ' ' .. id)
  for _, key in ipairs({K.workflow(root, id), K.workflow_steps(root, id), K.workflow_unmet(root, id)}) do
    redis.call('PEXPIREAT', key, expires_ms)
  end
  for _, step_id in ipairs(redis.call('LRANGE', K.workflow_steps(root, id), 0, -1)) do
    redis.call('PEXPIREAT', K.workflow_step(root, id, step_id), expires_ms)
  end
  WF.notify(root, id, 'workflow.' .. state, nil, extra)
end

-- WF.settle(root, workflow, now): every step reached a final state: the workflow completed when
-- all of them completed, else it failed (continue policy: something failed or was skipped).
function WF.settle(root, workflow, now)
  local counts = redis.call('HMGET', K.workflow(root, workflow.id), 'completed', 'step_count')
  WF.finish(root, workflow, counts[1] == counts[2] and WF_STATE.COMPLETED or WF_STATE.FAILED, now)
end

-- WF.close(root, workflow, state, reason, now): end a running workflow early (fail_fast or a
-- cancel): every step that can still move is canceled, and so is the task of each queued step.
-- The workflow leaves the running state first, so the task hook ignores those cancellations.
-- Returns how many steps were canceled.
function WF.close(root, workflow, state, reason, now)
  local workflow_key = K.workflow(root, workflow.id)
  redis.call('HSET', workflow_key, 'state', state, 'error', reason)
  local canceled = 0
  for _, step_id in ipairs(redis.call('LRANGE', K.workflow_steps(root, workflow.id), 0, -1)) do
    local step_key = K.workflow_step(root, workflow.id, step_id)
    local step = redis.call('HMGET', step_key, 'state', 'task')
    if WF.OPEN[step[1]] then
      if step[1] == STEP_STATE.QUEUED then
        WF.cancel_task(root, step[2], now)
      end
      redis.call('HSET', step_key, 'state', STEP_STATE.CANCELED, 'error', reason, 'finished_ms', now)
      canceled = canceled + 1
    end
  end
  redis.call('HINCRBY', workflow_key, 'canceled', canceled)
  redis.call('HSET', workflow_key, 'remaining', 0, 'input_required', 0)
  WF.finish(root, workflow, state, now, {'canceled_steps', canceled, 'error', reason})
  return canceled
end

-- WF.skip_dependents(root, workflow_id, step_id, reason, now): under the continue policy, every
-- step that depends on the failed step, directly or not, is skipped. Only waiting steps can
-- depend on a step that did not complete. Returns how many steps were skipped.
function WF.skip_dependents(root, workflow_id, step_id, reason, now)
  local pending, head, skipped = {step_id}, 1, 0
  while head <= #pending do
    local dependents = redis.call('HGET', K.workflow_step(root, workflow_id, pending[head]), 'dependents')
    head = head + 1
    for _, dependent in ipairs(split_csv(dependents or '')) do
      local dependent_key = K.workflow_step(root, workflow_id, dependent)
      if redis.call('HGET', dependent_key, 'state') == STEP_STATE.WAITING then
        redis.call('HSET', dependent_key, 'state', STEP_STATE.SKIPPED, 'error', reason, 'finished_ms', now)
        skipped = skipped + 1
        pending[#pending + 1] = dependent
      end
    end
  end
  return skipped
end

-- WF.step_completed(root, workflow, step_id, result, dependents, now, fields): store the result
-- (and the flat `fields`) and enqueue every dependent whose dependencies have now all completed.
function WF.step_completed(root, workflow, step_id, result, dependents, now, fields)
  local id, workflow_key = workflow.id, K.workflow(root, workflow.id)
  result = result or 'null'
  redis.call('HSET', K.workflow_step(root, id, step_id), 'state', STEP_STATE.COMPLETED, 'result', result,
    'finished_ms', now, unpack(fields))
  redis.call('HINCRBY', workflow_key, 'completed', 1)
  local remaining = redis.call('HINCRBY', workflow_key, 'remaining', -1)
  WF.notify(root, id, 'step.completed', step_id)
  -- A step completes once (the hook moves only a queued step with its current task), so it
  -- decrements each dependent's unmet count once: a count reaches 0 exactly once, when the last
  -- dependency completes, and never when a dependency failed (that one never decrements it).
  local unmet_key = K.workflow_unmet(root, id)
  for _, dependent in ipairs(dependents) do
    if redis.call('HINCRBY', unmet_key, dependent, -1) == 0 then
      WF.enqueue(root, workflow, WF.load_step(root, id, dependent), now, nil, {step = step_id, result = result})
    end
  end
  if remaining == 0 then
    WF.settle(root, workflow, now)
  end
end

-- WF.step_failed(root, workflow, step_id, outcome, error_text, now, fields): the step's task
-- failed for good ('failed', 'dead') or was canceled. fail_fast: the workflow fails and its other
-- steps are canceled. continue: the step's dependents are skipped and the other branches go on.
function WF.step_failed(root, workflow, step_id, outcome, error_text, now, fields)
  local id, workflow_key = workflow.id, K.workflow(root, workflow.id)
  local state = outcome == 'canceled' and STEP_STATE.CANCELED or STEP_STATE.FAILED
  local reason = (error_text and error_text ~= '') and error_text or ('task ' .. outcome)
  redis.call('HSET', K.workflow_step(root, id, step_id), 'state', state, 'error', reason, 'finished_ms', now,
    unpack(fields))
  redis.call('HINCRBY', workflow_key, state == STEP_STATE.CANCELED and 'canceled' or 'failed', 1)
  local summary = 'step ' .. step_id .. ' ' .. state .. ': ' .. reason
  if workflow.policy == WF.POLICY.FAIL_FAST then
    WF.notify(root, id, 'step.' .. state, step_id, {'error', reason})
    WF.close(root, workflow, WF_STATE.FAILED, summary, now)
    return
  end
  local skipped = WF.skip_dependents(root, id, step_id, 'skipped: ' .. summary, now)
  redis.call('HINCRBY', workflow_key, 'skipped', skipped)
  if redis.call('HGET', workflow_key, 'error') == false then
    redis.call('HSET', workflow_key, 'error', summary)
  end
  local remaining = redis.call('HINCRBY', workflow_key, 'remaining', -1 - skipped)
  WF.notify(root, id, 'step.' .. state, step_id, {'error', reason, 'skipped', skipped})
  if remaining == 0 then
    WF.settle(root, workflow, now)
  end
end

-- workflow_on_task_finished(root, task, outcome, now): advance the workflow a task belongs to,
-- once the task reaches a terminal outcome ('completed', 'failed', 'dead', 'canceled' or
-- 'input-required'). `task` is a table of the task hash's fields. Called by the task functions
-- in the same call as the outcome, so a step and its workflow move together with the task.
local function workflow_on_task_finished(root, task, outcome, now)
  local workflow_id, step_id = task.workflow, task.step
  if not workflow_id or workflow_id == '' or not step_id or step_id == '' then
    return
  end
  local record = redis.call('HMGET', K.workflow(root, workflow_id), 'state', 'policy', 'retention_ms', 'traceparent')
  -- A finished, canceled or expired workflow ignores late outcomes.
  if record[1] ~= WF_STATE.RUNNING then
    return
  end
  local step_key = K.workflow_step(root, workflow_id, step_id)
  local step = redis.call('HMGET', step_key, 'state', 'task', 'attempts', 'started_ms', 'dependents')
  -- Only the step's current task moves it, and only while the step is queued.
  if step[1] ~= STEP_STATE.QUEUED or step[2] ~= task.id then
    return
  end
  local workflow = {id = workflow_id, policy = record[2], retention_ms = tonumber(record[3]), traceparent = record[4]}
  local fields = {'attempts', (tonumber(step[3]) or 0) + (tonumber(task.attempt) or 0),
    'started_ms', step[4] or task.started_ms or ''}
  if outcome == 'completed' then
    WF.step_completed(root, workflow, step_id, task.result, split_csv(step[5] or ''), now, fields)
  elseif outcome == 'input-required' then
    redis.call('HSET', step_key, 'state', STEP_STATE.INPUT_REQUIRED, 'prompt', task.prompt or 'null', unpack(fields))
    redis.call('HINCRBY', K.workflow(root, workflow_id), 'input_required', 1)
    WF.notify(root, workflow_id, 'step.input-required', step_id)
  else
    WF.step_failed(root, workflow, step_id, outcome, task.error, now, fields)
  end
end
-- include: includes/workflow_json.lua
-- JSON spans: where each value of an already validated JSON text starts and ends, so that a
-- step's input or a context field is stored exactly as the caller wrote it. (cjson.decode and
-- cjson.encode again would turn [] into {} and round numbers to 14 digits.) Every text given to
-- these helpers was accepted by JSON.check first (strict JSON, no duplicate keys), so they only
-- find boundaries.

-- WF.json_string_end(text, quote): the position just after the string whose opening quote is
-- at `quote`.
function WF.json_string_end(text, quote)
  local at = quote + 1
  while true do
    local found = string.find(text, '["\\]', at)
    if string.byte(text, found) == 34 then
      return found + 1
    end
    at = found + 2
  end
end

-- WF.json_value(text, at): the first and the just-after-last position of the value that starts
-- at or after `at` (whitespace skipped).
function WF.json_value(text, at)
  local first = string.find(text, '%S', at)
  local byte = string.byte(text, first)
  if byte == 34 then
    return first, WF.json_string_end(text, first)
  end
  if byte ~= 123 and byte ~= 91 then
    local _, last = string.find(text, '^[^,:%]}%s]+', first)
    return first, last + 1
  end
  local depth = 0
  at = first
  while true do
    local found = string.find(text, '[%[%]{}"]', at)
    byte = string.byte(text, found)
    if byte == 34 then
      at = WF.json_string_end(text, found)
    else
      depth = depth + ((byte == 123 or byte == 91) and 1 or -1)
      at = found + 1
      if depth == 0 then
        return first, at
      end
    end
  end
end

-- WF.json_each(text, open, visit): call visit(key, key_text, value_first) for each item of the
-- object or array whose bracket is at `open`, in order; visit returns the position just after the
-- value (so it can skip the value with WF.json_value or walk into it). key (decoded) and key_text
-- (as written, quotes included) are nil for array elements. Returns the position after the
-- closing bracket. One pass: nothing is read twice.
function WF.json_each(text, open, visit)
  local is_object = string.byte(text, open) == 123
  local at = string.find(text, '%S', open + 1)
  local byte = string.byte(text, at)
  if byte == 125 or byte == 93 then
    return at + 1
  end
  while true do
    local key, key_text
    if is_object then
      local key_end = WF.json_string_end(text, at)
      key_text = string.sub(text, at, key_end - 1)
      key = string.find(key_text, '\\', 1, true) and cjson.decode(key_text) or string.sub(key_text, 2, -2)
      at = string.find(text, ':', key_end, true) + 1
    end
    at = string.find(text, '%S', visit(key, key_text, string.find(text, '%S', at)))
    if string.byte(text, at) ~= 44 then
      return at + 1
    end
    at = string.find(text, '%S', at + 1)
  end
end

-- WF.json_members(text): the members of the JSON object `text` as {order = {key...},
-- values = {key = value_text}, key_texts = {key = key_text}}; a repeated key keeps its first
-- place and its last value (as cjson does; only a context stored before JSON.check can have one).
function WF.json_members(text)
  local members = {order = {}, values = {}, key_texts = {}}
  WF.json_each(text, string.find(text, '%S'), function(key, key_text, first)
    local _, after = WF.json_value(text, first)
    if members.values[key] == nil then
      members.order[#members.order + 1] = key
    end
    members.values[key] = string.sub(text, first, after - 1)
    members.key_texts[key] = key_text
    return after
  end)
  return members
end

-- WF.merge_objects(current, patch): the JSON object text `current` with the top-level members of
-- the object text `patch` set (a member whose value is null is removed): members keep their
-- order, new ones come last, and every value keeps its text.
function WF.merge_objects(current, patch)
  local merged, changes = WF.json_members(current), WF.json_members(patch)
  for _, key in ipairs(changes.order) do
    if merged.values[key] == nil then
      merged.order[#merged.order + 1] = key
    end
    local value = changes.values[key]
    merged.values[key] = value ~= 'null' and value
    merged.key_texts[key] = changes.key_texts[key]
  end
  local parts = {}
  for _, key in ipairs(merged.order) do
    if merged.values[key] then
      parts[#parts + 1] = merged.key_texts[key] .. ':' .. merged.values[key]
    end
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- WF.step_input_texts(text): the text of each step's `input` in a workflow definition (already
-- decoded, so steps is known to be an array of objects), by step index; nil where absent.
function WF.step_input_texts(text)
  local inputs = {}
  local function each_field(index)
    return function(field, _, first)
      local _, after = WF.json_value(text, first)
      if field == 'input' then
        inputs[index] = string.sub(text, first, after - 1)
      end
      return after
    end
  end
  WF.json_each(text, string.find(text, '%S'), function(key, _, first)
    if key ~= 'steps' then
      local _, after = WF.json_value(text, first)
      return after
    end
    inputs = {}
    local index = 0
    return WF.json_each(text, first, function(_, _, element)
      index = index + 1
      return WF.json_each(text, element, each_field(index))
    end)
  end)
  return inputs
end
-- include: includes/workflow_definition.lua
-- Workflow definitions (validated whole before anything is written), storage and replies.

-- The fields a definition and a step may have; anything else is refused (it is likely a typo).
WF.DEFINITION_FIELDS = {steps = true, policy = true, id = true, chain = true}
WF.STEP_FIELDS = {id = true, capability = true, input = true, depends_on = true, max_attempts = true,
  backoff_ms = true, timeout_ms = true, priority = true}
-- The optional task options a step may set, stored with the step.
WF.STEP_OPTIONS = {'max_attempts', 'backoff_ms', 'timeout_ms', 'priority'}

-- WF.is_array(value): a decoded JSON array (a decoded empty object passes too).
function WF.is_array(value)
  if type(value) ~= 'table' then
    return false
  end
  local count = 0
  for key in pairs(value) do
    if type(key) ~= 'number' then
      return false
    end
    count = count + 1
  end
  return count == #value
end

-- WF.object(value, what, allowed): a decoded JSON object with only `allowed` fields; JSON null
-- fields count as absent.
function WF.object(value, what, allowed)
  if type(value) ~= 'table' or (next(value) ~= nil and WF.is_array(value)) then
    raise(ERR.BADARG, what .. ' must be a JSON object')
  end
  for key, field in pairs(value) do
    if not allowed[key] then
      raise(ERR.BADARG, what .. ' has an unknown field ' .. quoted(key))
    end
    if field == cjson.null then
      value[key] = nil
    end
  end
  return value
end

-- WF.string(value, what): a JSON string (for check_id and friends).
function WF.string(value, what)
  if type(value) ~= 'string' then
    raise(ERR.BADARG, what .. ' must be a string')
  end
  return value
end

-- WF.integer(value, what, min, max): a JSON number that is a whole number within [min, max], or nil.
function WF.integer(value, what, min, max)
  if value ~= nil and (type(value) ~= 'number' or value ~= math.floor(value) or value < min or value > max) then
    raise(ERR.BADARG, what .. ' must be an integer between ' .. min .. ' and ' .. max)
  end
  return value
end

-- WF.parse_step(raw, index, previous_id, chain): one step of a definition, checked; its
-- depends_on is the previous step alone in a chain.
function WF.parse_step(raw, index, previous_id, chain)
  local where = 'steps[' .. (index - 1) .. ']'
  WF.object(raw, where, WF.STEP_FIELDS)
  local step_id = check_id(WF.string(raw.id, where .. '.id'), where .. '.id')
  if string.sub(step_id, 1, 1) == '_' then
    raise(ERR.BADARG, where .. '.id may not start with _ (reserved for fields the library adds to inputs)')
  end
  where = 'step ' .. step_id
  local step = {id = step_id, dependents = {},
    capability = check_capability(WF.string(raw.capability, where .. ': capability'), where .. ': capability'),
    max_attempts = WF.integer(raw.max_attempts, where .. ': max_attempts', 1, LIMITS.max_attempts),
    backoff_ms = WF.integer(raw.backoff_ms, where .. ': backoff_ms', 0, LIMITS.duration_ms),
    timeout_ms = WF.integer(raw.timeout_ms, where .. ': timeout_ms', 1, LIMITS.duration_ms),
    priority = raw.priority and check_enum(raw.priority, where .. ': priority', PRIORITIES)}
  if chain then
    if raw.depends_on ~= nil then
      raise(ERR.BADARG, where .. ': depends_on cannot be given in a chain (each step depends on the one before)')
    end
    step.depends_on = previous_id and {previous_id} or {}
  elseif raw.depends_on == nil then
    step.depends_on = {}
  elseif not WF.is_array(raw.depends_on) then
    raise(ERR.BADARG, where .. ': depends_on must be an array of step ids')
  else
    step.depends_on = raw.depends_on
    for position, dependency in ipairs(step.depends_on) do
      check_id(WF.string(dependency, where .. ': depends_on[' .. (position - 1) .. ']'), where .. ': depends_on')
    end
  end
  return step
end

-- WF.link(steps): index the steps by id, check their dependencies (no duplicate steps, no unknown
-- or repeated dependencies) and fill each step's dependents. Returns the index.
function WF.link(steps)
  local by_id = {}
  for _, step in ipairs(steps) do
    if by_id[step.id] then
      raise(ERR.BADARG, 'step id ' .. step.id .. ' is used twice')
    end
    by_id[step.id] = step
  end
  for _, step in ipairs(steps) do
    local listed = {}
    for _, dependency in ipairs(step.depends_on) do
      if not by_id[dependency] then
        raise(ERR.BADARG, 'step ' .. step.id .. ' depends on unknown step ' .. dependency)
      end
      if listed[dependency] then
        raise(ERR.BADARG, 'step ' .. step.id .. ' lists dependency ' .. dependency .. ' twice')
      end
      listed[dependency] = true
      local dependents = by_id[dependency].dependents
      dependents[#dependents + 1] = step.id
    end
  end
  return by_id
end

-- WF.check_acyclic(steps, by_id): raise CYCLE naming the steps of one cycle, if there is one.
-- Kahn's algorithm removes every step whose dependencies are all removed; each step left over
-- has a dependency that is left over too, so walking from one to such a dependency must come
-- back to a step already walked: the walk from there on is a cycle.
function WF.check_acyclic(steps, by_id)
  local unmet, order, head = {}, {}, 1
  for _, step in ipairs(steps) do
    unmet[step.id] = #step.depends_on
    if unmet[step.id] == 0 then
      order[#order + 1] = step.id
    end
  end
  while head <= #order do
    for _, dependent in ipairs(by_id[order[head]].dependents) do
      unmet[dependent] = unmet[dependent] - 1
      if unmet[dependent] == 0 then
        order[#order + 1] = dependent
      end
    end
    head = head + 1
  end
  if #order == #steps then
    return
  end
  local at
  for _, step in ipairs(steps) do
    if unmet[step.id] > 0 then
      at = step.id
      break
    end
  end
  local path, position = {}, {}
  while not position[at] do
    path[#path + 1] = at
    position[at] = #path
    for _, dependency in ipairs(by_id[at].depends_on) do
      if unmet[dependency] > 0 then
        at = dependency
        break
      end
    end
  end
  -- path[i] depends on path[i + 1]; the cycle, listed so that each step depends on the one before.
  -- Listed from the cycle's step that comes first in the definition.
  local defined, first = {}, #path
  for index, step in ipairs(steps) do
    defined[step.id] = index
  end
  for index = position[at], #path do
    if defined[path[index]] < defined[path[first]] then
      first = index
    end
  end
  local cycle = {}
  for offset = 0, #path - position[at] do
    local index = first - offset
    if index < position[at] then
      index = index + #path - position[at] + 1
    end
    cycle[#cycle + 1] = path[index]
  end
  cycle[#cycle + 1] = cycle[1]
  raise(ERR.CYCLE, 'steps ' .. table.concat(cycle, ' -> ') .. ' form a cycle (each depends on the one before it)')
end

-- WF.parse_definition(text): the workflow definition (JSON text), checked whole: shape, ids,
-- capabilities, options of each step, dependencies, size and cycles. Returns {id (or nil),
-- policy, steps = {step...}} where each step has id, capability, input (JSON text as written),
-- depends_on, dependents, max_attempts, timeout_ms and priority.
function WF.parse_definition(text)
  check_json(text, 'definition', 'object')
  local definition = WF.object(cjson.decode(text), 'definition', WF.DEFINITION_FIELDS)
  local raw_steps = definition.steps
  if not WF.is_array(raw_steps) then
    raise(ERR.BADARG, 'definition.steps must be an array of steps')
  end
  if #raw_steps == 0 then
    raise(ERR.BADARG, 'the workflow has no steps')
  end
  if #raw_steps > LIMITS.workflow_steps then
    raise(ERR.LIMIT, 'a workflow may have at most ' .. LIMITS.workflow_steps .. ' steps, got ' .. #raw_steps)
  end
  if definition.chain ~= nil and type(definition.chain) ~= 'boolean' then
    raise(ERR.BADARG, 'definition.chain must be true or false')
  end
  local workflow_id = definition.id and check_id(WF.string(definition.id, 'definition.id'), 'definition.id')
  local policy = check_enum(definition.policy or WF.POLICY.FAIL_FAST, 'definition.policy',
    {WF.POLICY.FAIL_FAST, WF.POLICY.CONTINUE})
  local steps = {}
  for index, raw in ipairs(raw_steps) do
    steps[index] = WF.parse_step(raw, index, steps[index - 1] and steps[index - 1].id, definition.chain)
  end
  WF.check_acyclic(steps, WF.link(steps))
  local inputs = WF.step_input_texts(text)
  for index, step in ipairs(steps) do
    step.input = inputs[index] or 'null'
  end
  return {id = workflow_id, policy = policy, steps = steps}
end

-- WF.new_id(root): a workflow id from the namespace's counter (w1, w2, ...), skipping any a
-- caller chose already.
function WF.new_id(root)
  local workflow_id
  repeat
    workflow_id = 'w' .. redis.call('HINCRBY', K.meta(root), 'workflow_seq', 1)
  until redis.call('EXISTS', K.workflow(root, workflow_id)) == 0
  return workflow_id
end

-- WF.store_steps(root, workflow_id, steps): write the step list, each step's record (waiting) and
-- the unmet dependency count of each step that has dependencies.
function WF.store_steps(root, workflow_id, steps)
  local ids, unmet = {}, {}
  for index, step in ipairs(steps) do
    ids[index] = step.id
    local fields = {'id', step.id, 'capability', step.capability, 'input', step.input, 'state', STEP_STATE.WAITING,
      'attempts', 0, 'depends_on', table.concat(step.depends_on, ','), 'dependents', table.concat(step.dependents, ',')}
    for _, name in ipairs(WF.STEP_OPTIONS) do
      if step[name] then
        fields[#fields + 1] = name
        fields[#fields + 1] = step[name]
      end
    end
    redis.call('HSET', K.workflow_step(root, workflow_id, step.id), unpack(fields))
    if #step.depends_on > 0 then
      unmet[#unmet + 1] = step.id
      unmet[#unmet + 1] = #step.depends_on
    end
  end
  WF.call_chunked('RPUSH', K.workflow_steps(root, workflow_id), ids)
  WF.call_chunked('HSET', K.workflow_unmet(root, workflow_id), unmet)
end

-- WF.existing(root, workflow_id): the workflow's state, policy, retention and traceparent as a table; raises
-- NOTFOUND when it does not exist (or expired). No writes.
function WF.existing(root, workflow_id)
  local record = redis.call('HMGET', K.workflow(root, workflow_id), 'state', 'policy', 'retention_ms', 'traceparent')
  if not record[1] then
    raise(ERR.NOTFOUND, 'workflow ' .. workflow_id .. ' does not exist')
  end
  return {id = workflow_id, state = record[1], policy = record[2], retention_ms = tonumber(record[3]),
    traceparent = record[4]}
end

-- The fields of agentfn_wf_get's reply, in order.
WF.SUMMARY_FIELDS = {'id', 'state', 'policy', 'created_ms', 'finished_ms', 'error', 'step_count', 'remaining',
  'completed', 'failed', 'skipped', 'canceled', 'input_required', 'context_version', 'retention_ms', 'traceparent'}
WF.STEP_REPLY_FIELDS = {'id', 'capability', 'state', 'depends_on', 'input', 'attempts', 'task', 'result', 'error',
  'prompt', 'signal', 'queued_ms', 'started_ms', 'finished_ms'}

-- WF.step_reply(root, workflow_id, step_id): one step as a flat array, with task_state and, while
-- the step is queued, its live task's attempt added to attempts and its start time. No writes.
function WF.step_reply(root, workflow_id, step_id)
  local values = redis.call('HMGET', K.workflow_step(root, workflow_id, step_id), unpack(WF.STEP_REPLY_FIELDS))
  local task_state = ''
  if values[7] then
    local task = redis.call('HMGET', K.task(root, values[7]), 'state', 'attempt', 'started_ms')
    task_state = task[1] or ''
    if values[3] == STEP_STATE.QUEUED then
      values[6] = tostring((tonumber(values[6]) or 0) + (tonumber(task[2]) or 0))
      values[13] = values[13] or task[3]
    end
  end
  local reply = flat_reply(WF.STEP_REPLY_FIELDS, values)
  reply[#reply + 1] = 'task_state'
  reply[#reply + 1] = task_state
  return reply
end
-- include: includes/messages.lua
-- MSG: inbox helpers for the message transitions (agentfn_msg_*) and the reaper.
--
-- An inbox is the stream K.inbox(root, agent_id) with the consumer group GROUP (consumer = the
-- agent id); the stream entry id is the message id. Every message also sits in the sorted set
-- K.message_expiry(root) as '<agent_id> <message_id>' scored by its expiry time, so the reaper
-- finds expired messages without scanning inboxes. Acknowledged and expired messages leave the
-- inbox (XACK + XDEL + ZREM), so XLEN counts exactly the unread and the read-but-unacknowledged.
-- The inbox key itself expires with its last message; K.inboxes lists every inbox scored by
-- that expiry time (agentfn_reap drops the members whose time has passed).
local MSG = {}

-- The fields of an inbox entry, in the order a message is returned (after id).
MSG.FIELDS = {'from', 'type', 'content', 'reply_to', 'sent_ms', 'expires_ms', 'traceparent'}

-- MSG.check_id(value, what): a stream entry id '<ms>-<seq>' (the form of every message id), as
-- Redis writes it: each part a decimal without leading zeros within 64 bits (so that XACK and
-- XDEL cannot refuse it).
function MSG.check_id(value, what)
  local ms, seq
  if type(value) == 'string' and #value <= 41 then
    ms, seq = string.match(value, '^(%d+)%-(%d+)$')
  end
  if not (ms and MSG.is_uint64(ms) and MSG.is_uint64(seq)) then
    raise(ERR.BADARG, what .. ' must be a message id <ms>-<seq>, got ' .. quoted(value))
  end
  return value
end

-- MSG.is_uint64(digits): the decimal digits are 0 or start with 1-9, and are at most 2^64 - 1.
function MSG.is_uint64(digits)
  if #digits > 1 and string.byte(digits) == 48 then
    return false
  end
  return #digits < 20 or (#digits == 20 and digits <= '18446744073709551615')
end

-- MSG.check_ids(text, what): a comma-separated list of message ids without empty items.
function MSG.check_ids(text, what)
  if text == '' or string.find(text, ',,') or string.find(text, '^,') or string.find(text, ',$') then
    raise(ERR.BADARG, what .. ' must be a comma-separated list of message ids without empty items')
  end
  local ids = split_csv(text)
  if #ids > LIMITS.message_batch then
    raise(ERR.LIMIT, 'at most ' .. LIMITS.message_batch .. ' message ids at once')
  end
  for _, id in ipairs(ids) do
    MSG.check_id(id, what)
  end
  return ids
end

-- MSG.check_room(root, agent_id): raise LIMIT when the inbox holds DEFAULTS.inbox_max messages.
-- No writes: the cap refuses the sender, it never trims a message that is still unread.
function MSG.check_room(root, agent_id)
  if not MSG.has_room(root, agent_id) then
    raise(ERR.LIMIT, 'inbox of ' .. agent_id .. ' is full (' .. DEFAULTS.inbox_max
      .. ' unacknowledged messages)')
  end
end

-- MSG.has_room(root, agent_id): true while the inbox holds fewer than DEFAULTS.inbox_max messages.
function MSG.has_room(root, agent_id)
  return redis.call('XLEN', K.inbox(root, agent_id)) < DEFAULTS.inbox_max
end

-- MSG.append(root, to, message): add a message to an inbox (creating the stream and its group
-- at '0' when new), index its expiry, keep the inbox key alive until its last message expires,
-- and publish the message id on the inbox's channel. `message` holds from, type, content,
-- reply_to, sent_ms, expires_ms and optionally traceparent (an entry field only when given).
-- Returns the message id.
function MSG.append(root, to, message)
  local inbox = K.inbox(root, to)
  local fresh = redis.call('EXISTS', inbox) == 0
  if fresh then
    redis.call('XGROUP', 'CREATE', inbox, GROUP, '0', 'MKSTREAM')
  end
  local id
  if message.traceparent then
    id = redis.call('XADD', inbox, '*', 'from', message.from, 'type', message.type,
      'content', message.content, 'reply_to', message.reply_to, 'sent_ms', message.sent_ms,
      'expires_ms', message.expires_ms, 'traceparent', message.traceparent)
  else
    id = redis.call('XADD', inbox, '*', 'from', message.from, 'type', message.type,
      'content', message.content, 'reply_to', message.reply_to, 'sent_ms', message.sent_ms,
      'expires_ms', message.expires_ms)
  end
  redis.call('ZADD', K.message_expiry(root), message.expires_ms, to .. ' ' .. id)
  -- the inbox index (K.inboxes) holds each inbox scored by the key's own expiry time
  if fresh then
    redis.call('PEXPIREAT', inbox, message.expires_ms)
    redis.call('ZADD', K.inboxes(root), message.expires_ms, to)
  else
    redis.call('PEXPIREAT', inbox, message.expires_ms, 'GT')
    redis.call('ZADD', K.inboxes(root), 'GT', message.expires_ms, to)
  end
  redis.call('PUBLISH', K.channel(root, 'inbox:' .. to), id)
  return id
end

-- MSG.remove(root, agent_id, id): take a message out of an inbox for good (acknowledged or
-- expired). Returns 1 when the entry was still in the inbox, 0 otherwise.
function MSG.remove(root, agent_id, id)
  local inbox = K.inbox(root, agent_id)
  redis.call('XACK', inbox, GROUP, id)
  redis.call('ZREM', K.message_expiry(root), agent_id .. ' ' .. id)
  return redis.call('XDEL', inbox, id)
end

-- MSG.deliver(root, agent_id, entries, now, redelivered, messages): append each stream entry
-- (from XREADGROUP) to `messages` as a flat record, unless it expired or was deleted: those are
-- removed from the inbox and skipped. Returns the id of the last entry seen (nil when none).
function MSG.deliver(root, agent_id, entries, now, redelivered, messages)
  local last
  for _, entry in ipairs(entries) do
    last = entry[1]
    local fields = entry[2] and hash_to_table(entry[2])
    if not fields or (tonumber(fields.expires_ms) or 0) <= now then
      MSG.remove(root, agent_id, entry[1])
    else
      local record = {'id', entry[1], 'to', agent_id}
      for _, field in ipairs(MSG.FIELDS) do
        record[#record + 1] = field
        record[#record + 1] = fields[field] or ''
      end
      record[#record + 1] = 'redelivered'
      record[#record + 1] = redelivered and 1 or 0
      messages[#messages + 1] = record
    end
  end
  return last
end

-- MSG.read_group(inbox, agent_id, count, from_id): XREADGROUP without blocking; the entries
-- (an empty list when there are none).
function MSG.read_group(inbox, agent_id, count, from_id)
  local reply = redis.call('XREADGROUP', 'GROUP', GROUP, agent_id, 'COUNT', count, 'STREAMS', inbox, from_id)
  return (reply and reply[1] and reply[1][2]) or {}
end

-- MSG.last_id(inbox): the id of the inbox's newest entry, '0-0' when it is empty or missing.
function MSG.last_id(inbox)
  local newest = redis.call('XREVRANGE', inbox, '+', '-', 'COUNT', 1)
  return (newest[1] and newest[1][1]) or '0-0'
end
-- include: includes/expire_messages.lua
-- expire_messages(root, now, limit): up to `limit` messages whose expiry time has passed (read
-- or not) leave their inboxes and the expiry index. An inbox whose messages all expired may
-- already be gone (its key expires with its last message). Returns how many messages expired.
local function expire_messages(root, now, limit)
  local expired = redis.call('ZRANGE', K.message_expiry(root), '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  for _, member in ipairs(expired) do
    local agent_id, id = string.match(member, '^(%S+) (%S+)$')
    if agent_id then
      MSG.remove(root, agent_id, id)
    else
      redis.call('ZREM', K.message_expiry(root), member)
    end
  end
  return #expired
end
-- include: includes/settle.lua
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
-- include: includes/workflow_cancel_task.lua
-- WF.cancel_task(root, task_id, now): cancel the task of a step that a workflow cancels (fail_fast
-- or agentfn_wf_cancel) exactly as agentfn_task_cancel does, but without calling back into the
-- workflow hook. It is listed after SETTLE (settle.lua), which it reuses; the other workflow
-- helpers are listed before SETTLE because SETTLE calls the hook, and reach this one through WF
-- at call time.
function WF.cancel_task(root, task_id, now)
  local task = SETTLE.load(root, task_id, false)
  if task.state == STATE.QUEUED or task.state == STATE.DELAYED or task.state == STATE.RUNNING then
    SETTLE.cancel(root, task_id, task, now, false)
  end
end
-- include: includes/reap_tasks.lua
-- REAP: the task side of agentfn_reap.
local REAP = {}

-- REAP.expired_leases(root, now, limit): up to `limit` running tasks whose lease deadline has
-- passed (earliest first) lose their attempt, which counts as failed with error 'lease
-- expired': queued again at once, or dead when out of attempts. A lease left by a task that is
-- no longer running is dropped. Returns expired, requeued, dead_lettered.
function REAP.expired_leases(root, now, limit)
  local leases = K.leases(root)
  local expired, requeued, dead_lettered = 0, 0, 0
  for _, task_id in ipairs(redis.call('ZRANGE', leases, '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)) do
    local task = SETTLE.load(root, task_id, true)
    if task.state == STATE.RUNNING then
      TASK.unlink(root, task_id, task)
      local state = SETTLE.after_failure(root, task_id, task, 'lease expired', now, true, false)
      expired = expired + 1
      if state == STATE.DEAD then
        dead_lettered = dead_lettered + 1
      else
        requeued = requeued + 1
      end
    else
      redis.call('ZREM', leases, task_id)
    end
  end
  return expired, requeued, dead_lettered
end

-- REAP.spend(budget, part, root, now): run a part of the reap that returns (its count, the
-- budget it used) with what is left of the budget, when any is; returns its count (0 when it
-- did not run) and the budget left.
function REAP.spend(budget, part, root, now)
  if budget <= 0 then
    return 0, budget
  end
  local count, used = part(root, now, budget)
  return count, budget - used
end

-- REAP.expired_indexes(root, now, limit): the status indexes keep each inbox (K.inboxes), each
-- lapsed agent's record (K.lapsed) and each finished workflow (K.workflow_expiry, with its
-- state's K.workflows) scored by when its keys expire; up to `limit` members whose time has
-- passed (their keys are gone) leave them. Returns how many went, twice (its count and the
-- budget it used, for REAP.spend).
function REAP.expired_indexes(root, now, limit)
  local before = '(' .. string.format('%d', now)
  local count = 0
  for _, index in ipairs({K.inboxes(root), K.lapsed(root), K.workflow_expiry(root)}) do
    if count >= limit then
      break
    end
    local due = redis.call('ZRANGE', index, '-inf', before, 'BYSCORE', 'LIMIT', 0, limit - count)
    for _, member in ipairs(due) do
      local state, workflow_id = string.match(member, '^(%S+) (%S+)$')
      if index == K.workflow_expiry(root) and state then
        redis.call('ZREM', K.workflows(root, state), workflow_id)
      end
      redis.call('ZREM', index, member)
    end
    count = count + #due
  end
  return count, count
end

-- REAP.trim_dead_letters(root, now, limit): drop up to `limit` dead letters older than the
-- namespace's dead_retention_ms, and with each the record of its task (and the task's
-- idempotency key) when the task is still dead under that entry (a requeued task lives on): a
-- dead task's record lives exactly as long as its dead letter, so requeue works on every dead
-- letter listed. The stream goes when it is empty. Returns how many entries went, twice (its
-- count and the budget it used, for REAP.spend).
function REAP.trim_dead_letters(root, now, limit)
  local dead = K.dead(root)
  local before = now - CONFIG.duration(root, 'dead_retention_ms') - 1
  if before < 0 then
    return 0, 0
  end
  local entries = redis.call('XRANGE', dead, '-', string.format('%d', before), 'COUNT', string.format('%d', limit))
  if #entries == 0 then
    return 0, 0
  end
  local ids = {}
  for index, entry in ipairs(entries) do
    ids[index] = entry[1]
    local task_id = entry[2][2]
    local key = K.task(root, task_id)
    local task = redis.call('HMGET', key, 'state', 'entry', 'idempotency_key')
    if task[1] == STATE.DEAD and task[2] == entry[1] then
      redis.call('DEL', key)
      if task[3] and task[3] ~= '' and redis.call('GET', K.idempotency(root, task[3])) == task_id then
        redis.call('DEL', K.idempotency(root, task[3]))
      end
    end
  end
  redis.call('XDEL', dead, unpack(ids))
  if redis.call('XLEN', dead) == 0 then
    redis.call('DEL', dead)
  end
  return #entries, #entries
end

-- REAP.orphans(root, now, limit): the direct tasks of departed agents (K.orphans, due first)
-- whose grace has passed are dead-lettered with error 'agent gone': a queued direct task's
-- grace (its grace_ms, default DEFAULTS.direct_grace_ms) counts from when its agent went
-- (K.orphans_since) or from when it was queued, whichever is later. Looks at `limit` stream
-- entries at most. An agent whose direct stream holds tasks still in their grace is checked
-- again at the earliest end of grace; once the stream holds none, the stream is deleted and the
-- agent leaves K.orphans; an agent that came back leaves K.orphans. Returns how many tasks were
-- dead-lettered and how much of `limit` it used (agents and entries).
function REAP.orphans(root, now, limit)
  local orphans, since_key = K.orphans(root), K.orphans_since(root)
  local due = redis.call('ZRANGE', orphans, '-inf', ms_text(now), 'BYSCORE', 'LIMIT', '0',
    constant_text(LIMITS.sweep_batch))
  local dead_lettered, budget = 0, limit
  for _, agent_id in ipairs(due) do
    limit = limit - 1
    if limit <= 0 then
      break
    end
    local deadline = redis.call('ZSCORE', K.agents(root), agent_id)
    if deadline and tonumber(deadline) > now then
      redis.call('ZREM', orphans, agent_id)
      redis.call('HDEL', since_key, agent_id)
    else
      local since = tonumber(redis.call('HGET', since_key, agent_id) or '') or now
      local stream = K.direct(root, agent_id)
      local entries = redis.call('XRANGE', stream, '-', '+', 'COUNT', string.format('%d', limit))
      limit = limit - #entries
      local next_check
      for _, entry in ipairs(entries) do
        local task_id = entry[2][2]
        local task = redis.call('HMGET', K.task(root, task_id), 'state', 'entry', 'due_ms', 'grace_ms')
        local ends = nil
        if task[1] == STATE.QUEUED and task[2] == entry[1] then
          ends = math.max(since, tonumber(task[3]) or now) + (tonumber(task[4] or '') or DEFAULTS.direct_grace_ms)
        end
        if ends and ends > now then
          next_check = math.min(next_check or ends, ends)
        else
          -- the grace is over, or an entry of an attempt that ended (its agent, the stream's one
          -- consumer, is gone: nothing is pending)
          redis.call('XDEL', stream, entry[1])
          if ends then
            local loaded = SETTLE.load(root, task_id, true)
            SETTLE.dead_letter(root, task_id, loaded, 'agent gone', SETTLE.errors_with(loaded, 'agent gone', now), now)
            dead_lettered = dead_lettered + 1
          end
        end
      end
      if limit > 0 then -- the whole stream was seen
        if next_check then
          redis.call('ZADD', orphans, ms_text(next_check), agent_id)
        else
          REAP.drop_stream(root, stream)
          redis.call('ZREM', orphans, agent_id)
          redis.call('HDEL', since_key, agent_id)
        end
      end
    end
  end
  return dead_lettered, budget - math.max(limit, 0)
end

-- REAP.drop_stream(root, stream): delete a work stream and its place in K.streams and K.trim.
function REAP.drop_stream(root, stream)
  redis.call('DEL', stream)
  redis.call('SREM', K.streams(root), stream)
  redis.call('ZREM', K.trim(root), stream)
end

-- REAP.drop_acknowledged(stream, oldest_pending, last_delivered, limit): delete the entries
-- after the oldest pending one, up to the group's last delivered one, that are not pending
-- (acknowledged: their attempts ended while an older one still runs), looking at `limit`
-- entries at most. Returns how many entries it looked at.
function REAP.drop_acknowledged(stream, oldest_pending, last_delivered, limit)
  local count = string.format('%d', limit)
  local entries = redis.call('XRANGE', stream, '(' .. oldest_pending, last_delivered, 'COUNT', count)
  if #entries == 0 then
    return 0
  end
  local pending = {}
  for _, entry in ipairs(redis.call('XPENDING', stream, GROUP, '(' .. oldest_pending, entries[#entries][1], count)) do
    pending[entry[1]] = true
  end
  local acknowledged = {}
  for _, entry in ipairs(entries) do
    if not pending[entry[1]] then
      acknowledged[#acknowledged + 1] = entry[1]
    end
  end
  if #acknowledged > 0 then
    redis.call('XDEL', stream, unpack(acknowledged))
  end
  return #entries
end

-- REAP.trim_stream(stream, info, limit): drop the acknowledged entries of a work stream (those
-- of ended attempts), never one that is pending or undelivered (`info`: its group's, from
-- TASK.group_info). Those older than its oldest pending entry (all of them when none is
-- pending: up to the group's last-delivered-id; the entries after it are undelivered) go with
-- XTRIM MINID, whole nodes at a time; those between the oldest pending entry and the last
-- delivered one (attempts that ended while an older one runs on) are deleted, looking at
-- `limit` entries at most. Returns how many entries it looked at.
function REAP.trim_stream(stream, info, limit)
  local last_delivered = info['last-delivered-id']
  if tonumber(info.pending) == 0 then
    local ms, seq = string.match(last_delivered, '^(%d+)%-(%d+)$')
    redis.call('XTRIM', stream, 'MINID', ms .. '-' .. string.format('%d', tonumber(seq) + 1))
    return 0
  end
  local oldest_pending = redis.call('XPENDING', stream, GROUP, '-', '+', '1')[1][1]
  redis.call('XTRIM', stream, 'MINID', oldest_pending)
  if limit <= 0 or oldest_pending == last_delivered then
    return 0
  end
  return REAP.drop_acknowledged(stream, oldest_pending, last_delivered, limit)
end

-- REAP.in_use(root, stream, info, now): whether a live agent may read the stream: a consumer of
-- its group is left (`info`) and, for a direct stream, its agent is live; for a capability's
-- stream, some agent with the capability is live.
function REAP.in_use(root, stream, info, now)
  if tonumber(info.consumers) == 0 then
    return false
  end
  local agent_id = TASK.direct_agent(root, stream)
  if agent_id then
    local deadline = redis.call('ZSCORE', K.agents(root), agent_id)
    return deadline ~= false and deadline ~= nil and tonumber(deadline) > now
  end
  local capability = string.match(string.sub(stream, #root + 8), '^(.*):[^:]+$')
  return #redis.call('ZRANGE', K.capability(root, capability), '(' .. ms_text(now), '+inf', 'BYSCORE',
    'LIMIT', '0', '1') > 0
end

-- REAP.visit_stream(root, stream, limit, now): one stream of the trim index: trimmed
-- (REAP.trim_stream, `limit` entries looked at at most), then deleted when it holds nothing
-- (no undelivered nor pending entry) and no live agent reads it (REAP.in_use); a direct stream
-- that still holds tasks of an agent that is not live is watched (TASK.watch_direct). It
-- leaves the index unless the limit cut its trimming short. Returns the entries looked at and
-- whether it was deleted.
function REAP.visit_stream(root, stream, limit, now)
  local info = redis.call('EXISTS', stream) == 1 and TASK.group_info(stream)
  if not info then
    redis.call('SREM', K.streams(root), stream)
    redis.call('ZREM', K.trim(root), stream)
    return 0, false
  end
  local looked = REAP.trim_stream(stream, info, limit)
  if tonumber(info.pending) == 0 and redis.call('XLEN', stream) == 0 then
    if not REAP.in_use(root, stream, info, now) then
      REAP.drop_stream(root, stream)
      return looked, true
    end
  else
    local agent_id = TASK.direct_agent(root, stream)
    if agent_id then
      TASK.watch_direct(root, agent_id, 'NX')
    end
  end
  if looked < limit then
    redis.call('ZREM', K.trim(root), stream)
  end
  return looked, false
end

-- REAP.visit_streams(root, now, limit): REAP.visit_stream for the streams of the trim index
-- that are due (at most LIMITS.trim_batch, oldest first), looking at `limit` entries between
-- pending ones in all, each stream counting 1 more: the reaper's cost follows the work that
-- ended since, not the number of streams the namespace ever had. Returns how many streams were
-- deleted and how much of `limit` it used.
function REAP.visit_streams(root, now, limit)
  local deleted, budget = 0, limit
  for _, stream in ipairs(redis.call('ZRANGE', K.trim(root), '-inf', ms_text(now), 'BYSCORE', 'LIMIT', '0',
      string.format('%d', math.min(LIMITS.trim_batch, limit)))) do
    limit = limit - 1
    local looked, dropped = REAP.visit_stream(root, stream, math.max(limit, 0), now)
    limit = math.max(limit - looked, 0)
    if dropped then
      deleted = deleted + 1
    end
  end
  return deleted, budget - limit
end
-- include: includes/sweep_agents.lua
-- drop_agent_indexes(root, agent_id, capabilities): remove an agent from the live set, the
-- lapsed set and every capability index it was in (`capabilities` is the stored
-- comma-separated list).
local function drop_agent_indexes(root, agent_id, capabilities)
  redis.call('ZREM', K.agents(root), agent_id)
  redis.call('ZREM', K.lapsed(root), agent_id)
  for _, capability in ipairs(split_csv(capabilities or '')) do
    redis.call('ZREM', K.capability(root, capability), agent_id)
  end
end

-- sweep_lapsed_agents(root, now, budget): every agent whose liveness deadline passed (up to
-- LIMITS.sweep_batch, and while `budget` (default LIMITS.sweep_batch) covers the agent, 1, and
-- each of its tasks, 1; the first is swept whatever it holds) leaves the live set and every
-- capability index, is marked lapsed, hands back its tasks (release_agent_tasks: any beyond
-- the budget of the first come back when their leases expire), and its record expires after
-- the namespace's agent_retention_ms (at once when 0), listed meanwhile in K.lapsed scored by
-- that expiry time (agentfn_reap drops it from there once it passed). Returns the list of swept
-- agent ids and how many tasks they handed back.
local function sweep_lapsed_agents(root, now, budget)
  budget = budget or LIMITS.sweep_batch
  local lapsed = redis.call('ZRANGE', K.agents(root), '-inf', now, 'BYSCORE', 'LIMIT', 0,
    math.min(LIMITS.sweep_batch, budget))
  if #lapsed == 0 then
    return lapsed, 0
  end
  local retention_ms = CONFIG.duration(root, 'agent_retention_ms')
  local released, swept = 0, {}
  for index, agent_id in ipairs(lapsed) do
    -- the first agent is always swept (its tasks beyond the budget come back with their leases);
    -- the others only while the budget covers them and all of their tasks
    if index > 1
        and 1 + #SETTLE.held_tasks(root, agent_id, SETTLE.agent_streams(root, agent_id), budget) > budget then
      break
    end
    budget = budget - 1
    swept[#swept + 1] = agent_id
    local agent_key = K.agent(root, agent_id)
    drop_agent_indexes(root, agent_id, redis.call('HGET', agent_key, 'capabilities'))
    redis.call('HSET', agent_key, 'status', 'lapsed')
    local count = release_agent_tasks(root, agent_id, now, 'agent ' .. agent_id .. ' lapsed', math.max(budget, 0))
    released, budget = released + count, budget - count
    if retention_ms > 0 then
      redis.call('PEXPIREAT', agent_key, now + retention_ms)
      redis.call('ZADD', K.lapsed(root), now + retention_ms, agent_id)
    else
      redis.call('DEL', agent_key)
    end
    emit(root, 'agent.lapsed', {'agent', agent_id})
  end
  return swept, released
end
-- function: functions/agentfn_agent_deregister.lua
-- agentfn_agent_deregister: remove an agent for good.
--
-- Invariant: only the agent (its secret) deregisters itself. A deregistered agent is in no index, its record is deleted, every task it held is
-- handed back at once (not after its lease; up to 100, any more when their leases expire), and
-- it is a consumer of no group. Its direct
-- tasks wait their grace (GRACE_MS of agentfn_task_submit), then agentfn_reap dead-letters
-- them ('agent gone') and deletes its direct stream.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] agent_id: the agent's id
-- ARGV[2] secret: the secret it registered with
-- returns: flat array: agent (the id), released (how many tasks it held were handed back)
-- errors: BADARG, NOTFOUND, DENIED, VERSION
-- events: agent.deregistered
-- example: FCALL agentfn_agent_deregister 1 agentfn:{default} researcher-1 5f0c6a1e9b2d4c7f8a3e1d0b9c8a7f6e
local function agentfn_agent_deregister(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 2, 'agent_id, secret')
  local agent_id = check_id(args[1], 'agent_id')
  local secret = check_secret(args[2])
  parse_options(args, 3, {})
  check_schema(root, namespace)
  local agent_key = K.agent(root, agent_id)
  local capabilities = owned_agent(root, agent_id, secret).capabilities

  local now = now_ms()
  drop_agent_indexes(root, agent_id, capabilities)
  local released = release_agent_tasks(root, agent_id, now, 'agent ' .. agent_id .. ' deregistered',
    LIMITS.release_batch)
  redis.call('DEL', agent_key)
  emit(root, 'agent.deregistered', {'agent', agent_id})
  sweep_lapsed_agents(root, now)
  return {'agent', agent_id, 'released', released}
end
-- function: functions/agentfn_agent_find.lua
-- agentfn_agent_find: the live agents that have a capability (or every live agent).
--
-- Reads only. Liveness is judged by the server clock at the call: an agent whose deadline has
-- passed is never returned, even before a sweep has removed it from the indexes.
--
-- flags: no-writes
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] capability: a capability name, or * for every live agent
-- OPTION LIMIT n: at most n agents, 1 to 500 (default 500)
-- returns: array of agent records, each flat (as agentfn_agent_register), soonest deadline first
-- errors: BADARG, VERSION
-- example: FCALL_RO agentfn_agent_find 1 agentfn:{default} web_search LIMIT 10
local function agentfn_agent_find(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 1, 'capability')
  local capability = args[1]
  if capability ~= '*' then
    check_capability(capability, 'capability')
  end
  local options = parse_options(args, 2, {LIMIT = OPT.count(LIMITS.find_count)})
  check_schema(root, namespace)

  local index = capability == '*' and K.agents(root) or K.capability(root, capability)
  local ids = redis.call('ZRANGE', index, '(' .. now_ms(), '+inf', 'BYSCORE', 'LIMIT', 0,
    options.LIMIT or LIMITS.find_count)
  local agents = {}
  for _, agent_id in ipairs(ids) do
    agents[#agents + 1] = agent_reply(root, agent_id)
  end
  return agents
end
-- function: functions/agentfn_agent_heartbeat.lua
-- agentfn_agent_heartbeat: extend a live agent's liveness.
--
-- Invariant: only the agent (its secret) can extend its liveness, and only while it is live; a lapsed agent gets LAPSED and must
-- register again (its tasks were handed back when it lapsed). The new deadline is the server
-- clock plus the TTL, written to the live set and to every capability index together.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] agent_id: the agent's id
-- ARGV[2] secret: the secret it registered with
-- OPTION TTL_MS ms: a new liveness time to live in ms (default: the registered one)
-- returns: the agent record, flat (as agentfn_agent_register)
-- errors: BADARG, NOTFOUND, DENIED, LAPSED, VERSION
-- example: FCALL agentfn_agent_heartbeat 1 agentfn:{default} researcher-1 5f0c6a1e9b2d4c7f8a3e1d0b9c8a7f6e
local function agentfn_agent_heartbeat(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 2, 'agent_id, secret')
  local agent_id = check_id(args[1], 'agent_id')
  local secret = check_secret(args[2])
  local options = parse_options(args, 3, {TTL_MS = OPT.positive_duration})
  check_schema(root, namespace)
  local now = now_ms()
  local agent = live_agent(root, agent_id, now, secret)

  local ttl_ms = options.TTL_MS or agent.ttl_ms
  local expires_ms = now + ttl_ms
  redis.call('HSET', K.agent(root, agent_id), 'heartbeat_ms', now, 'expires_ms', expires_ms, 'ttl_ms', ttl_ms)
  redis.call('ZADD', K.agents(root), expires_ms, agent_id)
  for _, capability in ipairs(split_csv(agent.capabilities)) do
    redis.call('ZADD', K.capability(root, capability), expires_ms, agent_id)
  end
  sweep_lapsed_agents(root, now)
  return agent_reply(root, agent_id)
end
-- function: functions/agentfn_agent_register.lua
-- agentfn_agent_register: register an agent, or register it again, with its capabilities.
--
-- Invariant: an agent is in the live set and in the index of each of its capabilities exactly
-- while its record says live and its liveness deadline (server clock + TTL) is in the future.
-- Registering again replaces capabilities (dropped ones leave their indexes, and the agent
-- leaves their streams' consumer groups once it holds no task of them), metadata and TTL, and
-- revives a lapsed agent (its direct tasks are no longer orphans'). Lapsed agents found on the
-- way are swept from every index.
-- Ownership: an id is owned by the secret it registered with while it is live. A live agent
-- registers again only with that secret (else DENIED, nothing changes); an agent with no record,
-- or not live (lapsed, or past its deadline), registers with the secret given (a new process of
-- a lapsed agent may bring a new secret). Only sha1hex(secret) is stored, never the secret, and
-- the reply has neither.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] agent_id: the agent's id (letters, digits, _ . - @; at most 128 bytes)
-- ARGV[2] secret: the agent's secret, 32 to 128 bytes of letters, digits, _ - chosen by the
--   caller with at least 128 bits of entropy (e.g. 32 random hex digits)
-- ARGV[3] capabilities: comma-separated capability names (letters, digits, _ . -); may be
--   empty for an agent that takes only direct tasks and messages
-- OPTION TTL_MS ms: liveness time to live in ms, 1 to 365 days (default 30000)
-- OPTION METADATA json: free-form JSON object stored with the agent (default {})
-- returns: the agent record, flat: id, capabilities, metadata, status (live), ttl_ms,
--   registered_ms, heartbeat_ms, expires_ms
-- errors: BADARG, LIMIT, DENIED (live under another secret), VERSION
-- events: agent.registered
-- example: FCALL agentfn_agent_register 1 agentfn:{default} researcher-1 5f0c6a1e9b2d4c7f8a3e1d0b9c8a7f6e web_search,summarize TTL_MS 30000 METADATA '{"host":"h1"}'

-- leave_dropped_streams(root, agent_id, kept, previous, lingering): the agent's consumers leave
-- the groups of the streams of each capability it drops (in `previous` or `lingering`, the
-- stored lists, and not in the set `kept`), and those streams join the trim index; a
-- capability of which it still holds a task (a pending entry) lingers until it departs. Returns
-- the new lingering list, comma-separated.
local function leave_dropped_streams(root, agent_id, kept, previous, lingering)
  local still, done = {}, {}
  for _, list in ipairs({previous or '', lingering or ''}) do
    for _, capability in ipairs(split_csv(list)) do
      if not kept[capability] and not done[capability] then
        done[capability] = true
        local holds = false
        for _, priority in ipairs(PRIORITIES) do
          local stream = K.queue(root, capability, priority)
          if redis.call('EXISTS', stream) == 1 then
            if #redis.call('XPENDING', stream, GROUP, '-', '+', '1', agent_id) > 0 then
              holds = true
            else
              redis.call('XGROUP', 'DELCONSUMER', stream, GROUP, agent_id)
              TASK.mark_trim(root, stream)
            end
          end
        end
        if holds then
          still[#still + 1] = capability
        end
      end
    end
  end
  return table.concat(still, ',')
end

local function agentfn_agent_register(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 3, 'agent_id, secret, capabilities')
  local agent_id = check_id(args[1], 'agent_id')
  local secret_sha1 = redis.sha1hex(check_secret(args[2]))
  if string.find(args[3], ',,') or string.find(args[3], '^,') or string.find(args[3], ',$') then
    raise(ERR.BADARG, 'capabilities must be a comma-separated list without empty items')
  end
  local capabilities, seen = {}, {}
  for _, capability in ipairs(split_csv(args[3])) do
    check_capability(capability, 'capability')
    if not seen[capability] then
      seen[capability] = true
      capabilities[#capabilities + 1] = capability
    end
  end
  if #capabilities > LIMITS.capabilities_per_agent then
    raise(ERR.LIMIT, 'an agent may have at most ' .. LIMITS.capabilities_per_agent .. ' capabilities')
  end
  local options = parse_options(args, 4, {TTL_MS = OPT.positive_duration, METADATA = OPT.object})
  check_schema(root, namespace)
  local now = now_ms()
  local agent_key = K.agent(root, agent_id)
  local owner = redis.call('HMGET', agent_key, 'status', 'expires_ms', 'secret_sha1')
  if owner[1] == 'live' and tonumber(owner[2]) > now and owner[3] ~= secret_sha1 then
    raise(ERR.DENIED, 'agent ' .. agent_id .. ' is live under another secret until ' .. owner[2]
      .. ' (its liveness deadline, ms): wait for it to lapse, or deregister it with its secret')
  end

  sweep_lapsed_agents(root, now)
  local previous = redis.call('HMGET', agent_key, 'capabilities', 'registered_ms', 'status', 'lingering')
  for _, capability in ipairs(split_csv(previous[1] or '')) do
    if not seen[capability] then
      redis.call('ZREM', K.capability(root, capability), agent_id)
    end
  end
  local lingering = leave_dropped_streams(root, agent_id, seen, previous[1], previous[4])
  local ttl_ms = options.TTL_MS or DEFAULTS.agent_ttl_ms
  local expires_ms = now + ttl_ms
  local registered_ms = (previous[3] == 'live' and previous[2]) or now
  redis.call('HSET', agent_key, 'id', agent_id, 'capabilities', table.concat(capabilities, ','),
    'metadata', options.METADATA or '{}', 'status', 'live', 'ttl_ms', ttl_ms,
    'registered_ms', registered_ms, 'heartbeat_ms', now, 'expires_ms', expires_ms, 'lingering', lingering,
    'secret_sha1', secret_sha1)
  -- back (or new): its direct stream is no orphan's
  redis.call('ZREM', K.orphans(root), agent_id)
  redis.call('HDEL', K.orphans_since(root), agent_id)
  redis.call('PERSIST', agent_key)
  redis.call('ZREM', K.lapsed(root), agent_id)
  redis.call('ZADD', K.agents(root), expires_ms, agent_id)
  for _, capability in ipairs(capabilities) do
    redis.call('ZADD', K.capability(root, capability), expires_ms, agent_id)
  end
  emit(root, 'agent.registered', {'agent', agent_id, 'capabilities', table.concat(capabilities, ',')})
  return agent_reply(root, agent_id)
end
-- function: functions/agentfn_ctx_get.lua
-- agentfn_ctx_get: a workflow's shared context document and its version.
--
-- Reads only. Every workflow has one context document (a JSON object), shared by its steps'
-- handlers and its orchestrator; the version counts the writes (0 until the first
-- agentfn_ctx_set), for compare-and-set.
--
-- flags: no-writes
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] workflow_id: the workflow's id
-- returns: flat array: workflow, document (JSON object), version
-- errors: BADARG, NOTFOUND, VERSION
-- example: FCALL_RO agentfn_ctx_get 1 agentfn:{default} w1
local function agentfn_ctx_get(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 1, 'workflow_id')
  local workflow_id = check_id(args[1], 'workflow_id')
  parse_options(args, 2, {})
  check_schema(root, namespace)
  local context = redis.call('HMGET', K.workflow(root, workflow_id), 'context', 'context_version')
  if not context[1] then
    raise(ERR.NOTFOUND, 'workflow ' .. workflow_id .. ' does not exist')
  end
  return {'workflow', workflow_id, 'document', context[1], 'version', context[2]}
end
-- function: functions/agentfn_ctx_set.lua
-- agentfn_ctx_set: replace a workflow's shared context document, or merge fields into it.
--
-- Invariant: each write makes the version one higher; with EXPECT_VERSION the write happens only
-- if the version is still the expected one (compare-and-set), else CONFLICT and nothing changes.
-- MODE merge sets the top-level fields of the given object (a field given as null is removed)
-- and keeps the others; values are stored exactly as written.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] workflow_id: the workflow's id
-- ARGV[2] document: a JSON object: the new document (MODE set) or the fields to set (MODE merge);
--   at most 64 KiB, and so is the merged document
-- OPTION MODE set|merge: replace the document (default) or merge top-level fields into it
-- OPTION EXPECT_VERSION n: write only if the current version is n
-- returns: flat array: workflow, version (the new version)
-- errors: BADARG, CONFLICT, LIMIT, NOTFOUND, VERSION
-- events: context.updated
-- example: FCALL agentfn_ctx_set 1 agentfn:{default} w1 '{"draft":"v2"}' MODE merge EXPECT_VERSION 3
local function agentfn_ctx_set(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 2, 'workflow_id, document')
  local workflow_id = check_id(args[1], 'workflow_id')
  local document = args[2]
  check_json(document, 'document', 'object')
  if #document > LIMITS.context_bytes then
    raise(ERR.LIMIT, 'document is larger than ' .. LIMITS.context_bytes .. ' bytes')
  end
  local options = parse_options(args, 3, {
    MODE = function(value, name) return check_enum(value, name, {'set', 'merge'}) end,
    EXPECT_VERSION = function(value, name) return check_int(value, name, 0, 9007199254740991) end,
  })
  check_schema(root, namespace)
  local workflow_key = K.workflow(root, workflow_id)
  local context = redis.call('HMGET', workflow_key, 'context', 'context_version')
  if not context[1] then
    raise(ERR.NOTFOUND, 'workflow ' .. workflow_id .. ' does not exist')
  end
  local version = tonumber(context[2])
  if options.EXPECT_VERSION and options.EXPECT_VERSION ~= version then
    raise(ERR.CONFLICT, 'context of workflow ' .. workflow_id .. ' is at version ' .. version .. ', not '
      .. options.EXPECT_VERSION)
  end
  if options.MODE == 'merge' then
    document = WF.merge_objects(context[1], document)
    if #document > LIMITS.context_bytes then
      raise(ERR.LIMIT, 'the merged context would be larger than ' .. LIMITS.context_bytes .. ' bytes')
    end
  end

  version = version + 1
  redis.call('HSET', workflow_key, 'context', document, 'context_version', version)
  emit(root, 'context.updated', {'workflow', workflow_id, 'version', version})
  redis.call('PUBLISH', K.channel(root, 'wf:' .. workflow_id), 'context.updated ' .. version)
  return {'workflow', workflow_id, 'version', version}
end
-- function: functions/agentfn_msg_ack.lua
-- agentfn_msg_ack: acknowledge messages: they leave the agent's inbox for good.
--
-- Invariant: an acknowledged message is in no pending list, no inbox and no expiry index
-- (XACK + XDEL + ZREM together), so it is never delivered again and stops counting toward the
-- inbox cap. Acknowledging an id that is no longer in the inbox is not an error (a retried ack
-- is harmless); the reply counts what was removed. Only the agent (its secret, registered)
-- acknowledges its messages.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] agent_id: the inbox owner (registered)
-- ARGV[2] secret: the secret it registered with
-- ARGV[3] message_ids: comma-separated message ids, 1 to 200
-- returns: flat: removed (how many of the ids were still in the inbox)
-- errors: BADARG, LIMIT, NOTFOUND, DENIED, VERSION
-- example: FCALL agentfn_msg_ack 1 agentfn:{default} researcher-1 5f0c6a1e9b2d4c7f8a3e1d0b9c8a7f6e 1718000000000-0,1718000000001-0
local function agentfn_msg_ack(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 3, 'agent_id, secret, message_ids')
  local agent_id = check_id(args[1], 'agent_id')
  local secret = check_secret(args[2])
  local ids = MSG.check_ids(args[3], 'message_ids')
  parse_options(args, 4, {})
  check_schema(root, namespace)
  owned_agent(root, agent_id, secret)

  local removed = 0
  for _, id in ipairs(ids) do
    removed = removed + MSG.remove(root, agent_id, id)
  end
  return {'removed', removed}
end
-- function: functions/agentfn_msg_broadcast.lua
-- agentfn_msg_broadcast: send one message to every live agent with a capability.
--
-- Invariant: each live agent (liveness deadline after the server clock at the call) that has
-- the capability, or every live agent for *, gets its own inbox entry and notification, all in
-- one call; the sender itself is left out. An agent whose inbox is full gets nothing and is
-- named in the reply, so the sender learns who was not reached. A broadcast reaches at most 250
-- agents (LIMITS.broadcast_recipients): with more live recipients it is refused with LIMIT
-- before anything is written (send to fewer, by capability, or one by one).
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] from: the sender's id (left out of the recipients)
-- ARGV[2] capability: a capability name, or * for every live agent
-- ARGV[3] type: the message type (an id)
-- ARGV[4] content: the message content, JSON text (at most 64 KiB)
-- OPTION TTL_MS ms: each message expires this long after sending (default 24 h)
-- OPTION TRACEPARENT traceparent: the W3C trace context of the sender's span (as
--   agentfn_task_submit's), stored with each message
-- returns: flat: reached, [agent_id, message_id, agent_id, message_id, ...] (soonest liveness
--   deadline first), full, [agent_id, ...] (agents whose inbox was full)
-- errors: BADARG, LIMIT, VERSION
-- events: message.broadcast (from, capability, message_type, reached, full); each recipient's inbox
--   channel gets its message id
-- example: FCALL agentfn_msg_broadcast 1 agentfn:{default} planner-1 web_search announce '{"text":"new plan"}'
local function agentfn_msg_broadcast(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 4, 'from, capability, type, content')
  local from = check_id(args[1], 'from')
  local capability = args[2]
  if capability ~= '*' then
    check_capability(capability, 'capability')
  end
  local kind = check_id(args[3], 'type')
  check_json(args[4], 'content')
  local options = parse_options(args, 5, {TTL_MS = OPT.positive_duration, TRACEPARENT = OPT.traceparent})
  check_schema(root, namespace)

  local now = now_ms()
  local index = capability == '*' and K.agents(root) or K.capability(root, capability)
  local live = redis.call('ZCOUNT', index, '(' .. now, '+inf')
  if live > LIMITS.broadcast_recipients + (redis.call('ZSCORE', index, from) and 1 or 0) then
    raise(ERR.LIMIT, 'a broadcast reaches at most ' .. LIMITS.broadcast_recipients .. ' agents; ' .. live
      .. ' are live' .. (capability == '*' and '' or ' with ' .. capability))
  end
  local message = {from = from, type = kind, content = args[4], reply_to = '', sent_ms = now,
    expires_ms = now + (options.TTL_MS or DEFAULTS.retention_ms), traceparent = options.TRACEPARENT}
  local reached, full = {}, {}
  for _, agent_id in ipairs(redis.call('ZRANGE', index, '(' .. now, '+inf', 'BYSCORE')) do
    if agent_id ~= from then
      if MSG.has_room(root, agent_id) then
        reached[#reached + 1] = agent_id
        reached[#reached + 1] = MSG.append(root, agent_id, message)
      else
        full[#full + 1] = agent_id
      end
    end
  end
  emit(root, 'message.broadcast', {'from', from, 'capability', capability, 'message_type', kind,
    'reached', #reached / 2, 'full', #full})
  return {'reached', reached, 'full', full}
end
-- function: functions/agentfn_msg_read.lua
-- agentfn_msg_read: read an agent's inbox: its unacknowledged messages first, then new ones.
--
-- Invariant: a message stays in the inbox, and comes back on every read, until the agent
-- acknowledges it (agentfn_msg_ack) or it expires, so a reader that dies or reconnects skips
-- nothing. A read returns first the messages delivered earlier and not acknowledged (the
-- consumer's pending entries, redelivered 1), then undelivered ones (redelivered 0), oldest
-- first, at most COUNT in all. Expired messages met on the way are removed and not returned.
-- When messages is empty, every message sent so far was handled: block with
-- XREAD BLOCK <ms> STREAMS <wait key> <wait id> (no lost wake-up: a message sent after this
-- read has a larger id) and read again. ACK acknowledges handled messages first (as
-- agentfn_msg_ack), saving a round trip per batch. Only the agent (its secret) reads its inbox;
-- it must be registered (a lapsed agent whose record is kept still may).
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] agent_id: the reader (the inbox owner, registered)
-- ARGV[2] secret: the secret it registered with
-- OPTION COUNT n: at most n messages, 1 to 200 (default 10)
-- OPTION ACK message_ids: comma-separated ids of messages to acknowledge before reading (1 to
--   200)
-- returns: flat: messages, [message, ...], wait, [inbox_key, last_id] (last_id: the inbox's
--   newest id, 0-0 when it is empty; when messages is not empty, the last message's id, from
--   which XREAD returns at once while more messages wait); each message flat: id,
--   to, from, type, content, reply_to, sent_ms, expires_ms, traceparent ('' when sent without
--   one), redelivered (1 when it was delivered before and not acknowledged)
-- errors: BADARG, LIMIT, NOTFOUND, DENIED, VERSION
-- example: FCALL agentfn_msg_read 1 agentfn:{default} researcher-1 5f0c6a1e9b2d4c7f8a3e1d0b9c8a7f6e COUNT 10 ACK 1718000000000-0
local function agentfn_msg_read(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 2, 'agent_id, secret')
  local agent_id = check_id(args[1], 'agent_id')
  local secret = check_secret(args[2])
  local options = parse_options(args, 3, {COUNT = OPT.count(LIMITS.message_batch), ACK = MSG.check_ids})
  check_schema(root, namespace)
  owned_agent(root, agent_id, secret)

  for _, id in ipairs(options.ACK or {}) do
    MSG.remove(root, agent_id, id)
  end
  local count = options.COUNT or 10
  local inbox = K.inbox(root, agent_id)
  local messages = {}
  if redis.call('EXISTS', inbox) == 1 then
    local now = now_ms()
    local cursor = '0'
    while cursor and #messages < count do
      local entries = MSG.read_group(inbox, agent_id, count - #messages, cursor)
      cursor = MSG.deliver(root, agent_id, entries, now, true, messages)
    end
    local more = true
    while more and #messages < count do
      local entries = MSG.read_group(inbox, agent_id, count - #messages, '>')
      more = MSG.deliver(root, agent_id, entries, now, false, messages) ~= nil
    end
  end
  local last_id = #messages > 0 and messages[#messages][2] or MSG.last_id(inbox)
  return {'messages', messages, 'wait', {inbox, last_id}}
end
-- function: functions/agentfn_msg_send.lua
-- agentfn_msg_send: send a message to one agent's durable inbox.
--
-- Invariant: a message is in its recipient's inbox stream (the entry id is the message id) and
-- in the expiry index until it is acknowledged or expires; the recipient is notified on its
-- inbox channel in the same call. An inbox holding the maximum number of unacknowledged
-- messages refuses new ones with LIMIT: nothing unread is ever trimmed. A recipient that was
-- never registered is refused unless ALLOW_UNREGISTERED yes; a lapsed agent whose record still
-- exists receives (its inbox outlives its liveness).
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] from: the sender's id (any id; the sender need not be a registered agent)
-- ARGV[2] to: the recipient agent's id
-- ARGV[3] type: the message type, an id such as chat or review.request
-- ARGV[4] content: the message content, JSON text (at most 64 KiB)
-- OPTION REPLY_TO message_id: the id of the message this one answers
-- OPTION TTL_MS ms: the message expires this long after sending (default 24 h): it is then
--   skipped by reads and removed by agentfn_reap
-- OPTION ALLOW_UNREGISTERED yes|no: deliver even when no record of the recipient exists
--   (default no)
-- OPTION TRACEPARENT traceparent: the W3C trace context of the sender's span (as
--   agentfn_task_submit's), stored with the message and returned by agentfn_msg_read
-- returns: flat: id (the message id), expires_ms
-- errors: BADARG, NOTFOUND, LIMIT, VERSION
-- events: message.sent (message, from, to, message_type); publishes the message id on
--   agentfn:{<ns>}:notify:inbox:<to>
-- example: FCALL agentfn_msg_send 1 agentfn:{default} planner-1 researcher-1 question '{"text":"ready?"}' TTL_MS 60000
local function agentfn_msg_send(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 4, 'from, to, type, content')
  local from = check_id(args[1], 'from')
  local to = check_id(args[2], 'to')
  local kind = check_id(args[3], 'type')
  check_json(args[4], 'content')
  local options = parse_options(args, 5, {REPLY_TO = MSG.check_id, TTL_MS = OPT.positive_duration,
    ALLOW_UNREGISTERED = OPT.yes_no, TRACEPARENT = OPT.traceparent})
  check_schema(root, namespace)
  if not options.ALLOW_UNREGISTERED and redis.call('EXISTS', K.agent(root, to)) == 0 then
    raise(ERR.NOTFOUND, 'agent ' .. to .. ' is not registered (ALLOW_UNREGISTERED yes sends anyway)')
  end
  MSG.check_room(root, to)

  local now = now_ms()
  local expires_ms = now + (options.TTL_MS or DEFAULTS.retention_ms)
  local id = MSG.append(root, to, {from = from, type = kind, content = args[4],
    reply_to = options.REPLY_TO or '', sent_ms = now, expires_ms = expires_ms,
    traceparent = options.TRACEPARENT})
  emit(root, 'message.sent', {'message', id, 'from', from, 'to', to, 'message_type', kind})
  return {'id', id, 'expires_ms', expires_ms}
end
-- function: functions/agentfn_reap.lua
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
-- function: functions/agentfn_task_cancel.lua
-- agentfn_task_cancel: cancel a task that has not finished.
--
-- Invariant: a canceled task is in no stream, delayed set, lease set or agent set, and expires
-- after its retention. Queued: its undelivered entry is deleted. Delayed: it leaves the delayed
-- set. Running: its delivery and lease end now and cancel_requested is set; the worker learns
-- at its next extend (canceled 1), complete or fail (state canceled), and any result is
-- discarded. A finished task cannot be canceled (STATE).
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] task_id: the task's id
-- returns: flat array: id, state (canceled), was (the state before: queued, delayed or running)
-- errors: BADARG, NOTFOUND, STATE, VERSION
-- events: task.canceled
-- example: FCALL agentfn_task_cancel 1 agentfn:{default} t42
local function agentfn_task_cancel(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 1, 'task_id')
  local task_id = check_id(args[1], 'task_id')
  parse_options(args, 2, {})
  check_schema(root, namespace)
  local task = SETTLE.load(root, task_id, false)
  if task.state == '' then
    raise(ERR.NOTFOUND, 'task ' .. task_id .. ' does not exist')
  end
  if task.state ~= STATE.QUEUED and task.state ~= STATE.DELAYED and task.state ~= STATE.RUNNING then
    raise(ERR.STATE, 'task ' .. task_id .. ' is ' .. task.state .. ': only a queued, delayed or running task can be canceled')
  end

  SETTLE.cancel(root, task_id, task, now_ms(), true)
  return {'id', task_id, 'state', STATE.CANCELED, 'was', task.state}
end
-- function: functions/agentfn_task_claim.lua
-- agentfn_task_claim: claim the oldest highest-priority ready tasks an agent can run.
--
-- Invariant: only the agent (its secret) claims. A claimed task is running under a new attempt
-- and its token (attempt-<40 hex>, derived from the secret: only the claimer knows it; the task
-- keeps only its sha1, token_sha1), a pending entry
-- of its stream (consumer = the agent: the agent's tasks are its consumer's pending entries) and
-- in the leases set until its lease deadline. Due delayed tasks are promoted first. Order: the agent's direct stream, then
-- its capabilities by priority (high, normal, low); within a priority, across several
-- capabilities, the stream whose next undelivered entry is oldest. When fewer tasks than COUNT
-- are ready (none, or some), the reply says what to block on for the rest: XREAD BLOCK <ms>
-- STREAMS <wait keys> <wait ids> returns as soon as a task lands in any of them after this call
-- (no lost wake-up), or a delayed task becomes the earliest due (the delayed-wake stream), and
-- the earliest delayed task is due at next_due_ms (block at most until then, at least 1 ms);
-- then claim again.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] agent_id: the claiming agent (registered and live)
-- ARGV[2] secret: the secret it registered with
-- OPTION COUNT n: claim at most n tasks, 1 to 50 (default 1)
-- OPTION LEASE_MS ms: the lease of each claimed task (default: each task's timeout_ms)
-- returns: flat array: tasks, [task...], wait, [stream key, newest id, ...], next_due_ms, ms or
--   ''. Each task flat: id, capability, payload, attempt, token (<attempt>-<40 hex>: present it to complete, fail and extend), lease_deadline_ms,
--   priority, workflow, step, inputs (JSON text or ''), timeout_ms, traceparent (as submitted,
--   or the workflow's for a step; '' when none). wait and next_due_ms are
--   filled when tasks has fewer than COUNT (wait: the agent's direct stream, its capabilities'
--   streams of each priority and root:delayed-wake, each with its newest entry id or 0-0;
--   next_due_ms: the earliest due time in the delayed set)
-- errors: BADARG, NOTFOUND, DENIED, LAPSED, VERSION
-- events: task.running, task.queued (promoted delayed tasks)
-- example: FCALL agentfn_task_claim 1 agentfn:{default} researcher-1 5f0c6a1e9b2d4c7f8a3e1d0b9c8a7f6e COUNT 1

-- The options' checkers (built once, not on every call).
local TASK_CLAIM_OPTIONS = {COUNT = OPT.count(LIMITS.claim_count), LEASE_MS = OPT.positive_duration}

local function agentfn_task_claim(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 2, 'agent_id, secret')
  local agent_id = check_id(args[1], 'agent_id')
  local secret = check_secret(args[2])
  local options = parse_options(args, 3, TASK_CLAIM_OPTIONS)
  check_schema(root, namespace)
  local now = now_ms()
  local agent = live_agent(root, agent_id, now, secret)

  return TASK.claim(root, agent_id, agent.capabilities, options.COUNT or 1, options.LEASE_MS, now, secret)
end
-- function: functions/agentfn_task_complete.lua
-- agentfn_task_complete: finish a running attempt with its result (and claim the next tasks).
--
-- Invariant: only the current attempt's holder completes a task: the token's attempt must be
-- the task's (else STALE), the token the one its claim returned (else DENIED), and the task
-- running under it (else STALE); nothing changes on a refusal. With NEXT, the tasks claimed
-- get tokens derived from the token presented. Completing acknowledges the
-- stream entry (agentfn_reap trims it), drops the lease, stores the result and expires the task
-- after its retention. If the task was canceled while running, the reply says canceled and the result is
-- discarded. With INPUT_REQUIRED (workflow tasks only) the attempt ends without a result and the
-- workflow step waits for input. With NEXT n the agent claims its next tasks in the same call.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] task_id: the task's id
-- ARGV[2] token: the token the claim returned, <attempt>-<40 hex>
-- ARGV[3] result: the task's result, JSON text (at most 64 KiB); still required with
--   INPUT_REQUIRED, where it is ignored (pass null)
-- OPTION NEXT n: then claim up to n tasks for the same agent, 0 to 50 (default 0)
-- OPTION LEASE_MS ms: the lease of each task NEXT claims, as agentfn_task_claim's LEASE_MS
--   (default: each task's timeout_ms; ignored without NEXT)
-- OPTION INPUT_REQUIRED prompt: JSON text: the step needs input; the result is not stored, the
--   task's state becomes completed with its prompt field set, and the workflow step waits in
--   input-required until agentfn_wf_signal
-- returns: flat array: id, state (completed, or canceled), and with NEXT n > 0: next, [the
--   agentfn_task_claim reply]
-- errors: BADARG, LIMIT, NOTFOUND, STALE, DENIED, LAPSED (claiming next for an agent that lapsed), VERSION
-- events: task.completed (or none for a canceled task), then as agentfn_task_claim
-- example: FCALL agentfn_task_complete 1 agentfn:{default} t42 1-9a3c0e5d1b7f2a4c6e8d0b1a3c5e7f9d2b4a6c8e '{"answer":42}' NEXT 1 LEASE_MS 60000

-- The options' checkers (built once, not on every call).
local TASK_COMPLETE_OPTIONS = {NEXT = TASK.next_option, INPUT_REQUIRED = OPT.json, LEASE_MS = OPT.positive_duration}

local function check_result(value)
  check_json(value, 'result')
end

local function agentfn_task_complete(keys, args)
  local root, namespace = check_root(keys)
  local task_id, task, canceled, options = SETTLE.open_attempt(root, namespace, args, 'task_id, token, result',
    check_result, TASK_COMPLETE_OPTIONS, false)
  if options.INPUT_REQUIRED and task.workflow == '' then
    raise(ERR.BADARG, 'INPUT_REQUIRED is only for workflow tasks; ' .. task_id .. ' has no workflow')
  end
  local now = now_ms()
  local agent = SETTLE.next_agent(root, task, options, now)

  local state = STATE.CANCELED
  if not canceled then
    state = STATE.COMPLETED
    TASK.unlink(root, task_id, task)
    if options.INPUT_REQUIRED then
      SETTLE.finish(root, task_id, task, state, 'input-required', now, {'entry', '', 'prompt', options.INPUT_REQUIRED})
    else
      SETTLE.finish(root, task_id, task, state, 'completed', now, {'entry', '', 'result', args[3]})
    end
  end
  return SETTLE.reply(root, task, agent, options, now, {'id', task_id, 'state', state})
end
-- function: functions/agentfn_task_complete_many.lua
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
-- function: functions/agentfn_task_extend.lua
-- agentfn_task_extend: renew the lease of a running attempt.
--
-- Invariant: only the current attempt's holder renews its lease (token as
-- agentfn_task_complete: STALE for another attempt, DENIED for a token its claim did not return). The new lease deadline is the server clock plus the lease time. A task canceled while
-- running is not renewed: the reply says canceled 1 and the worker should stop.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] task_id: the task's id
-- ARGV[2] token: the token the claim returned, <attempt>-<40 hex>
-- OPTION LEASE_MS ms: the new lease time (default: the task's timeout_ms)
-- returns: flat array: id, lease_deadline_ms, canceled (1 when the task was canceled: stop
--   working on it; 0 otherwise)
-- errors: BADARG, NOTFOUND, STALE, DENIED, VERSION
-- example: FCALL agentfn_task_extend 1 agentfn:{default} t42 1-9a3c0e5d1b7f2a4c6e8d0b1a3c5e7f9d2b4a6c8e LEASE_MS 60000
local function agentfn_task_extend(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 2, 'task_id, token')
  local task_id = check_id(args[1], 'task_id')
  local attempt, token = TASK.token_arg(args[2])
  local options = parse_options(args, 3, {LEASE_MS = OPT.positive_duration})
  check_schema(root, namespace)
  local task = TASK.load(root, task_id, {'state', 'attempt', 'token_sha1', 'cancel_requested', 'timeout_ms',
    'lease_deadline_ms'})
  if TASK.check_token(task, task_id, attempt, token) then
    return {'id', task_id, 'lease_deadline_ms', task.lease_deadline_ms, 'canceled', 1}
  end

  local deadline = now_ms() + (options.LEASE_MS or tonumber(task.timeout_ms))
  redis.call('HSET', K.task(root, task_id), 'lease_deadline_ms', deadline)
  redis.call('ZADD', K.leases(root), deadline, task_id)
  return {'id', task_id, 'lease_deadline_ms', tostring(deadline), 'canceled', 0}
end
-- function: functions/agentfn_task_fail.lua
-- agentfn_task_fail: end a running attempt with an error: retry it, dead-letter it, or fail it.
--
-- Invariant: only the current attempt's holder fails a task (token as agentfn_task_complete:
-- STALE or DENIED).
-- The error joins the task's history. With RETRY yes and attempts left, the task is queued
-- again after the backoff (backoff_ms * 2^(attempt-1), at most backoff_max_ms, on the server
-- clock; state delayed, or queued when the delay is 0). Out of attempts it is dead: an entry in
-- the dead-letter stream root:dead carries task, capability, attempts, error and errors (JSON),
-- and agentfn_task_requeue can bring it back. RETRY no fails it for good (not dead-lettered).
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] task_id: the task's id
-- ARGV[2] token: the token the claim returned, <attempt>-<40 hex>
-- ARGV[3] error: what went wrong, UTF-8 text of at most 8192 bytes
-- OPTION RETRY yes|no: whether the task may be retried (default yes)
-- OPTION NEXT n: then claim up to n tasks for the same agent, 0 to 50 (default 0)
-- OPTION LEASE_MS ms: the lease of each task NEXT claims, as agentfn_task_claim's LEASE_MS
--   (default: each task's timeout_ms; ignored without NEXT)
-- returns: flat array: id, state (delayed, queued, failed, dead, or canceled when it was
--   canceled while running), due_ms (when it will be ready again; '' unless delayed or queued),
--   attempt (the attempt that failed), max_attempts (the task's attempts in all),
--   and with NEXT n > 0: next, [the agentfn_task_claim reply]
-- errors: BADARG, LIMIT, NOTFOUND, STALE, DENIED, LAPSED (claiming next for an agent that lapsed), VERSION
-- events: task.delayed, task.queued, task.failed or task.dead, then as agentfn_task_claim
-- example: FCALL agentfn_task_fail 1 agentfn:{default} t42 1-9a3c0e5d1b7f2a4c6e8d0b1a3c5e7f9d2b4a6c8e 'rate limited' RETRY yes

-- The options' checkers (built once, not on every call).
local TASK_FAIL_OPTIONS = {RETRY = OPT.yes_no, NEXT = TASK.next_option, LEASE_MS = OPT.positive_duration}

local function check_error_text(error_text)
  check_text(error_text, 'error', LIMITS.error_bytes)
end

local function agentfn_task_fail(keys, args)
  local root, namespace = check_root(keys)
  local task_id, task, canceled, options = SETTLE.open_attempt(root, namespace, args, 'task_id, token, error',
    check_error_text, TASK_FAIL_OPTIONS, true)
  local now = now_ms()
  local agent = SETTLE.next_agent(root, task, options, now)

  local state, due_ms = STATE.CANCELED, ''
  if not canceled then
    TASK.unlink(root, task_id, task)
    state, due_ms = SETTLE.after_failure(root, task_id, task, args[3], now, options.RETRY ~= false, true)
  end
  return SETTLE.reply(root, task, agent, options, now, {'id', task_id, 'state', state, 'due_ms', tostring(due_ms),
    'attempt', task.attempt, 'max_attempts', task.max_attempts})
end
-- function: functions/agentfn_task_get.lua
-- agentfn_task_get: a task's record.
--
-- Reads only. Every field of the task hash, in a fixed order, '' for fields not set.
--
-- flags: no-writes
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] task_id: the task's id
-- returns: flat array: id, capability, payload, priority, state, attempt, max_attempts,
--   backoff_ms, backoff_max_ms, timeout_ms, created_ms, due_ms, started_ms, finished_ms, agent,
--   stream, entry (the stream entry while queued or running; the dead-letter entry while dead),
--   lease_deadline_ms, result, error (the last one), errors (JSON array of {attempt, error,
--   agent, at_ms}), to, idempotency_key, workflow, step, inputs, prompt, retention_ms,
--   cancel_requested (1 when canceled while running), traceparent (the W3C trace context it was
--   submitted with, or its workflow's)
-- errors: BADARG, NOTFOUND, VERSION
-- example: FCALL_RO agentfn_task_get 1 agentfn:{default} t42
local function agentfn_task_get(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 1, 'task_id')
  local task_id = check_id(args[1], 'task_id')
  parse_options(args, 2, {})
  check_schema(root, namespace)
  local values = redis.call('HMGET', K.task(root, task_id), unpack(TASK.FIELDS))
  if not values[5] then
    raise(ERR.NOTFOUND, 'task ' .. task_id .. ' does not exist')
  end
  return flat_reply(TASK.FIELDS, values)
end
-- function: functions/agentfn_task_requeue.lua
-- agentfn_task_requeue: give a dead (or failed) task a fresh attempt budget and queue it again.
--
-- Invariant: a requeued task is queued with a new stream entry, its dead-letter entry removed,
-- and kept until it finishes again (its expiry is cleared). The attempt counter (the fencing
-- token) continues; max_attempts becomes the current attempt plus the new budget.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] task_id: the task's id
-- OPTION MAX_ATTEMPTS n: the new attempt budget, 1 to 1000 (default 3)
-- returns: flat array: id, state (queued)
-- errors: BADARG, NOTFOUND, STATE (the task is not dead or failed), VERSION
-- events: task.queued
-- example: FCALL agentfn_task_requeue 1 agentfn:{default} t42 MAX_ATTEMPTS 2
local function agentfn_task_requeue(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 1, 'task_id')
  local task_id = check_id(args[1], 'task_id')
  local options = parse_options(args, 2, {MAX_ATTEMPTS = TASK.attempts_option})
  check_schema(root, namespace)
  local task = TASK.load(root, task_id, {'state', 'attempt', 'stream', 'entry', 'idempotency_key'})
  if task.state == '' then
    raise(ERR.NOTFOUND, 'task ' .. task_id .. ' does not exist')
  end
  if task.state ~= STATE.DEAD and task.state ~= STATE.FAILED then
    raise(ERR.STATE, 'task ' .. task_id .. ' is ' .. task.state .. ': only a dead or failed task can be requeued')
  end

  if task.state == STATE.DEAD and task.entry ~= '' then
    redis.call('XDEL', K.dead(root), task.entry)
    if redis.call('XLEN', K.dead(root)) == 0 then
      redis.call('DEL', K.dead(root))
    end
  end
  local key = K.task(root, task_id)
  local now = now_ms()
  redis.call('PERSIST', key)
  if task.idempotency_key ~= '' then
    redis.call('PERSIST', K.idempotency(root, task.idempotency_key))
  end
  redis.call('HSET', key, 'state', STATE.QUEUED, 'due_ms', now, 'finished_ms', '',
    'max_attempts', tonumber(task.attempt) + (options.MAX_ATTEMPTS or DEFAULTS.max_attempts),
    'entry', TASK.enqueue(root, task.stream, task_id))
  emit(root, 'task.queued', {'task', task_id})
  return {'id', task_id, 'state', STATE.QUEUED}
end
-- function: functions/agentfn_task_submit.lua
-- agentfn_task_submit: submit a task for any agent with a capability (or for one agent).
--
-- Invariant: a task exists exactly once, with its record and either an undelivered entry in its
-- stream (state queued) or a member of the delayed set (state delayed). The stream is one per
-- capability and priority, root:queue:<capability>:<priority>, or the agent's direct stream
-- root:direct:<agent> with TO; a new stream is created with the consumer group. With an
-- idempotency key, a second submit while the first task is retained returns that task and
-- creates nothing (the key expires with the task).
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] capability: the capability an agent needs to run the task
-- ARGV[2] payload: the task's input, JSON text (at most 64 KiB)
-- OPTION PRIORITY level: high, normal or low (default normal)
-- OPTION DELAY_MS ms: queue the task only after this delay on the server clock (default 0)
-- OPTION MAX_ATTEMPTS n: attempts before the task is dead-lettered, 1 to 1000 (default 3)
-- OPTION BACKOFF_MS ms: retry delay after the first failed attempt, doubling with each attempt
--   (backoff_ms * 2^(attempt-1)); 0 retries at once (default 1000)
-- OPTION BACKOFF_MAX_MS ms: cap on the retry delay (default 60000)
-- OPTION TIMEOUT_MS ms: the lease a claimer gets, renewable with agentfn_task_extend (default 30000)
-- OPTION IDEMPOTENCY_KEY key: an id; while the task submitted with it is retained, the same key
--   returns that task instead of creating one
-- OPTION TO agent_id: route the task to this registered agent only (its direct stream); a
--   lapsed agent whose record is kept is accepted (the task waits for it, see GRACE_MS)
-- OPTION GRACE_MS ms: with TO only: how long the task, queued, waits for its agent once the
--   agent is gone (deregistered, lapsed, or not live at submit) before agentfn_reap
--   dead-letters it with error 'agent gone' (default 300000; counted from when the agent went
--   or the task was queued, whichever is later)
-- OPTION RETENTION_MS ms: how long the finished task is kept (default 86400000)
-- OPTION TRACEPARENT traceparent: the W3C trace context of the submitter's span,
--   00-<32 hex trace id>-<16 hex span id>-<2 hex flags> (lower case, ids not all zeros); stored
--   with the task and returned by every claim of it, so that each attempt's span is its child
-- returns: flat array: id (t<number>), state (queued or delayed; the existing task's state when
--   an idempotency key matched), created (1, or 0 when an idempotency key matched)
-- errors: BADARG, LIMIT, NOTFOUND (TO names no registered agent), VERSION
-- events: task.submitted
-- example: FCALL agentfn_task_submit 1 agentfn:{default} web_search '{"q":"redis"}' PRIORITY high MAX_ATTEMPTS 5

-- The options' checkers (built once, not on every call).
local TASK_SUBMIT_OPTIONS = TASK.submit_checkers(OPT.id)

local function agentfn_task_submit(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 2, 'capability, payload')
  local capability = check_capability(args[1], 'capability')
  check_json(args[2], 'payload')
  local options = TASK.submit_options(args, 3, TASK_SUBMIT_OPTIONS)
  check_schema(root, namespace)
  local spec = TASK.submit_spec(root, options)
  if options.IDEMPOTENCY_KEY then
    local existing, state = TASK.idempotent(root, options.IDEMPOTENCY_KEY)
    if existing then
      return {'id', existing, 'state', state, 'created', 0}
    end
  end

  spec.capability, spec.payload = capability, args[2]
  local task_id, state = create_task(root, now_ms(), spec)
  return {'id', task_id, 'state', state, 'created', 1}
end
-- function: functions/agentfn_task_submit_many.lua
-- agentfn_task_submit_many: submit many tasks in one call, with options shared by all of them.
--
-- Invariant: each task is created as by agentfn_task_submit (its record, its entry in its
-- stream or its place in the delayed set, its own task.submitted event), and the call is
-- all-or-nothing: every argument is checked before the first write, so a malformed item or
-- option (or TO naming no registered agent) refuses the whole call and nothing is created. The
-- ids are reserved with one HINCRBY and follow each other in the order of the items. The
-- options are agentfn_task_submit's and apply to every task of the call; IDEMPOTENCY_KEY names
-- one task, so it is refused (BADARG): submit such a task with agentfn_task_submit.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] count: how many items follow, 1 to 100; each item is two arguments, capability payload
--   (ARGV[2] and ARGV[3] are the first item's, the next two the second's, and so on)
-- ARGV[2] capability: the capability an agent needs to run that task
-- ARGV[3] payload: that task's input, JSON text (the payloads of one call: at most 64 KiB in all)
-- OPTION PRIORITY level: high, normal or low, for every task (default normal)
-- OPTION DELAY_MS ms: queue the tasks only after this delay on the server clock (default 0)
-- OPTION MAX_ATTEMPTS n: attempts before a task is dead-lettered, 1 to 1000 (default 3)
-- OPTION BACKOFF_MS ms: retry delay after the first failed attempt, doubling with each attempt
--   (default 1000)
-- OPTION BACKOFF_MAX_MS ms: cap on the retry delay (default 60000)
-- OPTION TIMEOUT_MS ms: the lease a claimer gets, renewable with agentfn_task_extend (default 30000)
-- OPTION TO agent_id: route every task to this registered agent only, as agentfn_task_submit's TO
-- OPTION GRACE_MS ms: with TO only: as agentfn_task_submit's GRACE_MS (default 300000)
-- OPTION RETENTION_MS ms: how long each finished task is kept (default 86400000)
-- OPTION TRACEPARENT traceparent: the W3C trace context of the submitter's span, stored with
--   every task, as agentfn_task_submit's TRACEPARENT
-- returns: flat array: the ids of the tasks created (t<number>), in the order of the items (all
--   queued, or all delayed with DELAY_MS > 0)
-- errors: BADARG (also an idempotency key), LIMIT, NOTFOUND (TO names no registered agent), VERSION
-- events: task.submitted for each task, in the order of the items
-- example: FCALL agentfn_task_submit_many 1 agentfn:{default} 2 web_search '{"q":"redis"}' web_search '{"q":"lua"}' PRIORITY high

-- The options' checkers (built once, not on every call): agentfn_task_submit's, but for
-- IDEMPOTENCY_KEY, refused with a word on what to do instead.
local TASK_SUBMIT_MANY_OPTIONS = TASK.submit_checkers(function()
  raise(ERR.BADARG, 'IDEMPOTENCY_KEY names one task: submit such a task with agentfn_task_submit')
end)

-- submit_many_items(args): the items, checked (none written yet): count, then count pairs of
-- capability, payload, then the options. Returns the count and the options.
local function submit_many_items(args)
  local count = check_items(args, 2, LIMITS.submit_count, 'capability, payload')
  local checked, total = {}, 0
  for index = 1, count do
    local base = 2 * index
    local capability = args[base]
    if not checked[capability] then
      checked[check_capability(capability, 'capability of item ' .. index)] = true
    end
    total = check_json_item(args[base + 1], index, 'payload', 'payloads', total)
  end
  return count, TASK.submit_options(args, 2 + 2 * count, TASK_SUBMIT_MANY_OPTIONS)
end

local function agentfn_task_submit_many(keys, args)
  local root, namespace = check_root(keys)
  local count, options = submit_many_items(args)
  check_schema(root, namespace)
  local spec = TASK.submit_spec(root, options)

  local now = now_ms()
  local first = TASK.take_ids(root, count) - count
  local ids = {}
  for index = 1, count do
    local base = 2 * index
    spec.capability, spec.payload = args[base], args[base + 1]
    ids[index] = create_task(root, now, spec, first + index)
  end
  return ids
end
-- function: functions/agentfn_version.lua
-- agentfn_version: report the deployed library and the namespace's schema.
--
-- Reads only. Clients call it (FCALL_RO) on first use to check that the library they expect is
-- deployed and that the namespace was migrated to the schema the library expects.
--
-- flags: no-writes
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- returns: flat array: library (version), code_sha (sha256 of the rendered source),
--   schema_version (the namespace's; 0 when never migrated), library_schema_version
--   (the schema this library expects)
-- errors: BADARG (wrong key)
-- example: FCALL_RO agentfn_version 1 agentfn:{default}
local function agentfn_version(keys, args)
  local root = check_root(keys)
  if #args ~= 0 then
    raise(ERR.BADARG, 'expected no arguments, got ' .. #args)
  end
  local schema = redis.call('HGET', K.meta(root), 'schema_version') or '0'
  return {'library', LIBRARY_VERSION, 'code_sha', CODE_SHA, 'schema_version', schema,
    'library_schema_version', tostring(SCHEMA_VERSION)}
end
-- function: functions/agentfn_wf_cancel.lua
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
-- function: functions/agentfn_wf_create.lua
-- agentfn_wf_create: create a workflow (a graph of steps) and enqueue its root steps.
--
-- Invariant: the whole definition is checked before anything is written (shape, ids,
-- capabilities, duplicate steps, unknown dependencies, size, cycles), so a refused graph leaves
-- no trace. Each step becomes a task once every step it depends on has completed; the steps with
-- no dependencies are enqueued in this call. The definition is a JSON object: {"steps": [{"id",
-- "capability", "input" (any JSON, the task's payload; default null), "depends_on" (step ids), "max_attempts",
-- "backoff_ms", "timeout_ms", "priority"}, ...], "policy": "fail_fast" (default) or "continue", "id" (optional
-- workflow id), "chain" (true: each step depends on the one before it; depends_on not allowed)}.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] definition: the workflow definition, a JSON object (see above)
-- OPTION RETENTION_MS ms: how long the finished workflow and its tasks are kept (default 24 h)
-- OPTION CONTEXT json: the initial shared context document, a JSON object, at most 64 KiB
--   (default {})
-- OPTION TRACEPARENT traceparent: the W3C trace context of the creator's span (as
--   agentfn_task_submit's), kept in the workflow record and given to every step's task
-- returns: flat array: id (the workflow id), state (running), steps (how many), queued (root
--   steps enqueued now)
-- errors: BADARG, CYCLE, LIMIT, STATE (the chosen id exists), VERSION
-- events: workflow.created, then task.submitted for each root step
-- example: FCALL agentfn_wf_create 1 agentfn:{default} '{"steps":[{"id":"search","capability":"web_search","input":{"q":"redis"}},{"id":"sum","capability":"summarize","depends_on":["search"]}]}'
local function agentfn_wf_create(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 1, 'definition')
  local options = parse_options(args, 2, {RETENTION_MS = OPT.positive_duration, CONTEXT = OPT.object,
    TRACEPARENT = OPT.traceparent})
  if options.CONTEXT and #options.CONTEXT > LIMITS.context_bytes then
    raise(ERR.LIMIT, 'CONTEXT is larger than ' .. LIMITS.context_bytes .. ' bytes')
  end
  local definition = WF.parse_definition(args[1])
  check_schema(root, namespace)
  if definition.id and redis.call('EXISTS', K.workflow(root, definition.id)) == 1 then
    raise(ERR.STATE, 'workflow ' .. definition.id .. ' already exists')
  end

  local now = now_ms()
  local steps = definition.steps
  local workflow = {id = definition.id or WF.new_id(root), policy = definition.policy,
    retention_ms = options.RETENTION_MS or DEFAULTS.retention_ms, traceparent = options.TRACEPARENT}
  redis.call('HSET', K.workflow(root, workflow.id), 'id', workflow.id, 'state', WF_STATE.RUNNING,
    'policy', workflow.policy, 'created_ms', now, 'step_count', #steps, 'remaining', #steps, 'completed', 0,
    'failed', 0, 'skipped', 0, 'canceled', 0, 'input_required', 0, 'retention_ms', workflow.retention_ms,
    'context', options.CONTEXT or '{}', 'context_version', 0)
  if workflow.traceparent then
    redis.call('HSET', K.workflow(root, workflow.id), 'traceparent', workflow.traceparent)
  end
  redis.call('ZADD', K.workflows(root, WF_STATE.RUNNING), now, workflow.id)
  WF.store_steps(root, workflow.id, steps)
  WF.notify(root, workflow.id, 'workflow.created', nil, {'steps', #steps, 'policy', workflow.policy})
  local queued = 0
  for _, step in ipairs(steps) do
    if #step.depends_on == 0 then
      WF.enqueue(root, workflow, step, now)
      queued = queued + 1
    end
  end
  return {'id', workflow.id, 'state', WF_STATE.RUNNING, 'steps', #steps, 'queued', queued}
end
-- function: functions/agentfn_wf_get.lua
-- agentfn_wf_get: a workflow's state and, by default, each of its steps.
--
-- Reads only. A step's attempts count every attempt of every task it ran (a step runs again
-- after agentfn_wf_signal); task_state is the state of its current (or last) task.
--
-- flags: no-writes
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] workflow_id: the workflow's id
-- OPTION STEPS yes|no: include the steps (default yes)
-- OPTION OFFSET n: with STEPS yes, start at the step at this position of the definition order,
--   from 0 (default 0)
-- OPTION COUNT n: with STEPS yes, at most n steps, 1 to the most steps a workflow may have
--   (default all); page a large workflow with OFFSET and COUNT (step_count tells how many)
-- returns: flat array: id, state (running, completed, failed, canceled), policy, created_ms,
--   finished_ms, error (why it failed or was canceled), step_count, remaining (steps not final),
--   completed, failed, skipped, canceled, input_required (steps waiting for a signal),
--   context_version, retention_ms, traceparent (as created with; '' when none), then (with
--   STEPS yes) steps: an array of flat arrays in definition order: id, capability, state
--   (waiting, queued, input-required, completed, failed, skipped, canceled), depends_on
--   (comma-separated), input (JSON), attempts, task (current or last task id), result (JSON),
--   error, prompt (JSON), signal (JSON), queued_ms, started_ms, finished_ms, task_state
-- errors: BADARG, NOTFOUND, VERSION
-- example: FCALL_RO agentfn_wf_get 1 agentfn:{default} w1
local function agentfn_wf_get(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 1, 'workflow_id')
  local workflow_id = check_id(args[1], 'workflow_id')
  local options = parse_options(args, 2, {STEPS = OPT.yes_no,
    OFFSET = function(value, name) return check_int(value, name, 0, LIMITS.workflow_steps) end,
    COUNT = OPT.count(LIMITS.workflow_steps)})
  check_schema(root, namespace)
  local values = redis.call('HMGET', K.workflow(root, workflow_id), unpack(WF.SUMMARY_FIELDS))
  if not values[1] then
    raise(ERR.NOTFOUND, 'workflow ' .. workflow_id .. ' does not exist')
  end

  local reply = flat_reply(WF.SUMMARY_FIELDS, values)
  if options.STEPS ~= false then
    local steps = {}
    local first = options.OFFSET or 0
    local last = first + (options.COUNT or LIMITS.workflow_steps) - 1
    for index, step_id in ipairs(redis.call('LRANGE', K.workflow_steps(root, workflow_id), first, last)) do
      steps[index] = WF.step_reply(root, workflow_id, step_id)
    end
    reply[#reply + 1] = 'steps'
    reply[#reply + 1] = steps
  end
  return reply
end
-- function: functions/agentfn_wf_signal.lua
-- agentfn_wf_signal: give a step that asked for input its input, and run the step again.
--
-- Invariant: a step waits in input-required (durably: it is only data) from the moment its
-- handler completed its task with INPUT_REQUIRED until this call; then it becomes queued with a
-- new task whose payload is the step's input again and whose inputs are the dependency results
-- plus "_signal": the value given here.
--
-- flags: none
-- KEYS[1] root: the namespace root key, agentfn:{<namespace>}
-- ARGV[1] workflow_id: the workflow's id
-- ARGV[2] step_id: the step waiting for input
-- ARGV[3] value: the input, any JSON value
-- returns: flat array: workflow, step, state (queued), task (the new task's id)
-- errors: BADARG, LIMIT, NOTFOUND, STATE (the workflow is not running or the step is not waiting
--   for input), VERSION
-- events: step.signaled, task.submitted
-- example: FCALL agentfn_wf_signal 1 agentfn:{default} w1 review '{"approved":true}'
local function agentfn_wf_signal(keys, args)
  local root, namespace = check_root(keys)
  check_arity(args, 3, 'workflow_id, step_id, value')
  local workflow_id = check_id(args[1], 'workflow_id')
  local step_id = check_id(args[2], 'step_id')
  local value = args[3]
  check_json(value, 'value')
  parse_options(args, 4, {})
  check_schema(root, namespace)
  local workflow = WF.existing(root, workflow_id)
  if workflow.state ~= WF_STATE.RUNNING then
    raise(ERR.STATE, 'workflow ' .. workflow_id .. ' is ' .. workflow.state)
  end
  local step_key = K.workflow_step(root, workflow_id, step_id)
  local state = redis.call('HGET', step_key, 'state')
  if not state then
    raise(ERR.NOTFOUND, 'workflow ' .. workflow_id .. ' has no step ' .. step_id)
  end
  if state ~= STEP_STATE.INPUT_REQUIRED then
    raise(ERR.STATE, 'step ' .. step_id .. ' is ' .. state .. ', not waiting for input')
  end

  local now = now_ms()
  redis.call('HSET', step_key, 'signal', value)
  redis.call('HINCRBY', K.workflow(root, workflow_id), 'input_required', -1)
  WF.notify(root, workflow_id, 'step.signaled', step_id)
  local task_id = WF.enqueue(root, workflow, WF.load_step(root, workflow_id, step_id), now, value)
  return {'workflow', workflow_id, 'step', step_id, 'state', STEP_STATE.QUEUED, 'task', task_id}
end
-- Registration: every callback runs inside guard(), which turns raise() into a coded error reply.
redis.register_function{function_name = 'agentfn_agent_deregister', callback = guard(agentfn_agent_deregister)}
redis.register_function{function_name = 'agentfn_agent_find', callback = guard(agentfn_agent_find), flags = {'no-writes'}}
redis.register_function{function_name = 'agentfn_agent_heartbeat', callback = guard(agentfn_agent_heartbeat)}
redis.register_function{function_name = 'agentfn_agent_register', callback = guard(agentfn_agent_register)}
redis.register_function{function_name = 'agentfn_ctx_get', callback = guard(agentfn_ctx_get), flags = {'no-writes'}}
redis.register_function{function_name = 'agentfn_ctx_set', callback = guard(agentfn_ctx_set)}
redis.register_function{function_name = 'agentfn_msg_ack', callback = guard(agentfn_msg_ack)}
redis.register_function{function_name = 'agentfn_msg_broadcast', callback = guard(agentfn_msg_broadcast)}
redis.register_function{function_name = 'agentfn_msg_read', callback = guard(agentfn_msg_read)}
redis.register_function{function_name = 'agentfn_msg_send', callback = guard(agentfn_msg_send)}
redis.register_function{function_name = 'agentfn_reap', callback = guard(agentfn_reap)}
redis.register_function{function_name = 'agentfn_task_cancel', callback = guard(agentfn_task_cancel)}
redis.register_function{function_name = 'agentfn_task_claim', callback = guard(agentfn_task_claim)}
redis.register_function{function_name = 'agentfn_task_complete', callback = guard(agentfn_task_complete)}
redis.register_function{function_name = 'agentfn_task_complete_many', callback = guard(agentfn_task_complete_many)}
redis.register_function{function_name = 'agentfn_task_extend', callback = guard(agentfn_task_extend)}
redis.register_function{function_name = 'agentfn_task_fail', callback = guard(agentfn_task_fail)}
redis.register_function{function_name = 'agentfn_task_get', callback = guard(agentfn_task_get), flags = {'no-writes'}}
redis.register_function{function_name = 'agentfn_task_requeue', callback = guard(agentfn_task_requeue)}
redis.register_function{function_name = 'agentfn_task_submit', callback = guard(agentfn_task_submit)}
redis.register_function{function_name = 'agentfn_task_submit_many', callback = guard(agentfn_task_submit_many)}
redis.register_function{function_name = 'agentfn_version', callback = guard(agentfn_version), flags = {'no-writes'}}
redis.register_function{function_name = 'agentfn_wf_cancel', callback = guard(agentfn_wf_cancel)}
redis.register_function{function_name = 'agentfn_wf_create', callback = guard(agentfn_wf_create)}
redis.register_function{function_name = 'agentfn_wf_get', callback = guard(agentfn_wf_get), flags = {'no-writes'}}
redis.register_function{function_name = 'agentfn_wf_signal', callback = guard(agentfn_wf_signal)}
