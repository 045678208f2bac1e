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
