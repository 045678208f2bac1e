-- emit(root, kind, fields): append a transition to the capped namespace event stream and
-- publish `<kind> <subject>` on the namespace's events channel. `fields` is a flat list whose
-- first pair names the subject (for example {'task', id, 'state', 'queued'}).
local function emit(root, kind, fields)
  redis.call('XADD', K.events(root), 'MAXLEN', '~', DEFAULTS.events_max, '*', 'type', kind, unpack(fields))
  redis.call('PUBLISH', K.channel(root, 'events'), kind .. ' ' .. (fields[2] or ''))
end
