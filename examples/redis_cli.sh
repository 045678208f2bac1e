#!/bin/sh
# One task's life with redis-cli alone: every step is an FCALL any language can send.
#   REDIS_URL=redis://127.0.0.1:6379 sh examples/redis_cli.sh
set -eu
url=${REDIS_URL:-redis://127.0.0.1:6379}
ns=cli-example-$$                     # a fresh namespace; its root key is agentfn:{<ns>}
root="agentfn:{$ns}"
agentfn deploy --url "$url" --namespace "$ns"   # or FUNCTION LOAD + migrations/ (docs/PROTOCOL.md)
r() { redis-cli -u "$url" --no-raw "$@"; }

r FCALL agentfn_agent_register 1 "$root" shell-1 word_count TTL_MS 30000
r FCALL agentfn_task_submit 1 "$root" word_count '{"text":"one two three"}' MAX_ATTEMPTS 3
r FCALL agentfn_task_claim 1 "$root" shell-1 COUNT 1        # the task, its token (attempt) 1
r FCALL agentfn_task_complete 1 "$root" t1 1 '{"words":3}'  # a stale token is refused: STALE
r FCALL_RO agentfn_task_get 1 "$root" t1
r FCALL agentfn_agent_deregister 1 "$root" shell-1
