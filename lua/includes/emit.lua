-- emit(root, kind, fields): append a transition to the capped namespace event stream and
-- publish `<kind> <subject>` on the namespace's events channel. `fields` is a flat list whose
-- first pair names the subject (for example {'task', id, 'state', 'queued'}). It runs on every
-- transition, so it is kept cheap: every argument is text (redis.call converts a number on each
-- call), and the stream and channel names of each namespace are built once (EMIT_KEYS).
local EMIT_KEYS = {}
local function emit(root, kind, fields)
  local names = EMIT_KEYS[root]
  if not names then
    names = {events = K.events(root), channel = K.channel(root, 'events')}
    EMIT_KEYS[root] = names
  end
  redis.call('XADD', names.events, 'MAXLEN', '~', constant_text(DEFAULTS.events_max), '*', 'type', kind,
    unpack(fields))
  redis.call('PUBLISH', names.channel, kind .. ' ' .. (fields[2] or ''))
end
