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
