#!/bin/sh
# One task's life with redis-cli alone: every step is an FCALL any language can send.
#   REDIS_URL=redis://127.0.0.1:6379 sh examples/redis_cli.sh
set -eu
url=${REDIS_URL:-redis://127.0.0.1:6379}
ns=cli-example-$$                     # a fresh namespace; its root key is agentfn:{<ns>}
root="agentfn:{$ns}"
agentfn deploy --url "$url" --namespace "$ns"   # or FUNCTION LOAD + migrations/ (docs/PROTOCOL.md)
r() { redis-cli -u "$url" --no-raw "$@"; }
secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')  # the agent's proof (or openssl rand -hex 16)
field() { awk -v name="$1" 'found { print; exit } $0 == name { found = 1 }'; }

r FCALL agentfn_agent_register 1 "$root" shell-1 "$secret" word_count TTL_MS 30000
r FCALL agentfn_task_submit 1 "$root" word_count '{"text":"one two three"}' MAX_ATTEMPTS 3
token=$(redis-cli -u "$url" FCALL agentfn_task_claim 1 "$root" shell-1 "$secret" | field token)
r FCALL agentfn_task_complete 1 "$root" t1 "$token" '{"words":3}'  # forged: DENIED, stale: STALE
r FCALL_RO agentfn_task_get 1 "$root" t1
r FCALL agentfn_agent_deregister 1 "$root" shell-1 "$secret"
