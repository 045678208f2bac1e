-- Release the namespace's migration lock, only if this runner still holds it.
-- KEYS[1] agentfn:{<namespace>}:migrate-lock; ARGV[1] the token the runner SET it to.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
