#!/usr/bin/env bash
# The whole agentfn lifecycle with nothing but redis-cli: a reference for clients in any language.
#
#   agentfn render > library.lua      # or take library.lua from someone who has Python
#   REDIS_URL=redis://127.0.0.1:6379 AGENTFN_NAMESPACE=demo tests/crosslang/lifecycle.sh library.lua
#
# It loads the library with FUNCTION LOAD, initialises the namespace by running each migration
# with EVAL, then calls every function of the library, one FCALL per transition:
#   1. register an agent with a secret, heartbeat, find it by capability; a wrong secret is DENIED
#   2. wait for work (XREAD BLOCK on what an empty claim names), submit a task, claim it, renew
#      its lease, complete it, read it back; a forged token is DENIED, an attempt number BADARG
#   3. failures: fail with RETRY yes and claim again; run out of attempts (dead) and requeue;
#      cancel a queued task; run the reaper
#   4. a three-step workflow (fetch -> summarize -> publish): claim and complete each step as it
#      is unlocked, share a context document, answer a step that asks for input; cancel another
#   5. messages: send one, broadcast one, read them, acknowledge them
#   6. deregister the agent
# Every call is echoed on stderr. At the end stdout gets name=value lines naming what was made;
# tests/test_crosslang.py checks that state with the Python client.
#
# Reading replies: when its output is not a terminal, redis-cli prints one value per line and
# flattens nested arrays. Replies are flat field/value arrays, so `field NAME` (below) takes
# the line after the first line that reads NAME. With -e an error reply goes to stderr as
# `CODE message` and redis-cli exits non-zero.
#
# The agent proves who it is with a secret: 16 bytes of /dev/urandom as hex (or `openssl rand
# -hex 16`), passed right after the agent id to every call that acts as the agent (register,
# heartbeat, claim, deregister, msg_read, msg_ack). The library stores only its SHA-1. The echo
# of the calls shows it as <secret>: a secret is never printed (redis-cli's own arguments are
# visible to other local users in ps: a real agent would rather use a client library).
set -euo pipefail

library=${1:?usage: lifecycle.sh LIBRARY_FILE (the output of agentfn render)}
url=${REDIS_URL:-redis://127.0.0.1:6379}
namespace=${AGENTFN_NAMESPACE:-crosslang}
migrations=${AGENTFN_MIGRATIONS:-$(dirname "$0")/../../migrations}
root="agentfn:{$namespace}"    # KEYS[1] of every call: the namespace root
agent=sh-agent-1
random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }   # random_hex BYTES
secret=$(random_hex 16)
wrong_secret=$(random_hex 16)            # what another member of the namespace might try

cli() { redis-cli -e -u "$url" "$@"; }    # -e: an error reply makes redis-cli exit non-zero
shown() {                                # the call as echoed on stderr: secrets as <secret>
  local text="$*"
  text=${text//"$secret"/<secret>}
  echo "${text//"$wrong_secret"/<secret>}"
}
fcall() {                                # fcall FUNCTION ARG...: the namespace root is the one key
  echo "FCALL $(shown "$1" 1 "$root" "${@:2}")" >&2
  cli FCALL "$1" 1 "$root" "${@:2}"
}
fcall_ro() {                             # for the functions flagged no-writes
  echo "FCALL_RO $(shown "$1" 1 "$root" "${@:2}")" >&2
  cli FCALL_RO "$1" 1 "$root" "${@:2}"
}
field() { awk -v name="$1" 'found { print; exit } $0 == name { found = 1 }'; }
expect() {                               # expect WHAT ACTUAL EXPECTED
  [ "$2" = "$3" ] || { echo "lifecycle.sh: $1 is '$2', expected '$3'" >&2; exit 1; }
}
refused() {                              # refused WHAT CODE FUNCTION ARG...: a coded refusal
  local error
  echo "FCALL $(shown "$3" 1 "$root" "${@:4}")" >&2
  if error=$(cli FCALL "$3" 1 "$root" "${@:4}" 2>&1 >/dev/null); then
    echo "lifecycle.sh: $1 succeeded, expected $2" >&2; exit 1
  fi
  expect "$1" "${error%% *}" "$2"
  case $error in *"$secret"* | *"$wrong_secret"*)
    echo "lifecycle.sh: $1: the refusal shows a secret" >&2; exit 1 ;;
  esac
}
report() { echo "$1=$2"; }               # what the Python test checks afterwards

# --- Load the library and initialise the namespace ------------------------------------------
expect "FUNCTION LOAD" "$(cli -x FUNCTION LOAD REPLACE <"$library")" agentfn
for migration in "$migrations"/[0-9][0-9][0-9][0-9]_*.lua; do
  # A migration returns 'more' until it is done; then record its number as the schema version.
  while outcome=$(cli EVAL "$(cat "$migration")" 1 "$root") && [ "$outcome" = more ]; do :; done
  expect "$(basename "$migration")" "$outcome" done
  number=$(basename "$migration"); number=$((10#${number%%_*}))
  cli HSET "$root:meta" schema_version "$number" >/dev/null
done
version=$(fcall_ro agentfn_version)
expect "schema_version" "$(field schema_version <<<"$version")" "$(field library_schema_version <<<"$version")"

# --- 1. Register an agent with the capabilities it handles ----------------------------------
# It stays live while it heartbeats within its TTL (judged by the server's clock).
registered=$(fcall agentfn_agent_register "$agent" "$secret" echo,fetch,summarize,publish \
  TTL_MS 60000 METADATA '{"language":"sh"}')
expect "agent status" "$(field status <<<"$registered")" live
expect "heartbeat" "$(fcall agentfn_agent_heartbeat "$agent" "$secret" TTL_MS 60000 | field status)" live
# Without the secret nobody else can act as the agent, nor take its id while it is live.
refused "heartbeat with a wrong secret" DENIED agentfn_agent_heartbeat "$agent" "$wrong_secret"
refused "register of a live id with another secret" DENIED \
  agentfn_agent_register "$agent" "$wrong_secret" echo
expect "agents found for echo" "$(fcall_ro agentfn_agent_find echo LIMIT 10 | field id)" "$agent"
report agent "$agent"

# --- 2. Wait for work, submit, claim, complete ----------------------------------------------
# An idle agent's claim returns no task but the streams to wait on, each with an id. XREAD BLOCK
# on exactly those from exactly those ids returns as soon as a task lands in one of them after
# the claim (here it lands before the XREAD, and still wakes it: no lost wake-up). Then claim.
idle=$(fcall agentfn_task_claim "$agent" "$secret" COUNT 1)
mapfile -t wait < <(awk '$0 == "next_due_ms" { exit } waiting { print } $0 == "wait" { waiting = 1 }' <<<"$idle")
streams=(); ids=()                       # wait is stream, id, stream, id...; XREAD wants streams then ids
for ((i = 0; i < ${#wait[@]}; i += 2)); do streams+=("${wait[i]}"); ids+=("${wait[i + 1]}"); done
task=$(fcall agentfn_task_submit echo '{"text":"hello"}' | field id)
expect "task that woke the agent" "$(cli XREAD BLOCK 5000 STREAMS "${streams[@]}" "${ids[@]}" | field task)" "$task"
claimed=$(fcall agentfn_task_claim "$agent" "$secret" COUNT 1)
expect "claimed task" "$(field id <<<"$claimed")" "$task"
token=$(field token <<<"$claimed")       # the fencing token: it must come back with the result
# The token (`<attempt>-<40 hex>`, derived from the secret) fences the result: a stale worker's
# completion is refused (STALE), and so is a forged one: the attempt number alone is not a token
# (BADARG), the right attempt with other hex is not this attempt's (DENIED).
[[ $token =~ ^1-[0-9a-f]{40}$ ]] || expect "token" "$token" "1-<40 hex>"
refused "complete with the attempt number" BADARG \
  agentfn_task_complete "$task" "$(field attempt <<<"$claimed")" '"forged"'
forged="$(field attempt <<<"$claimed")-$(random_hex 20)"
refused "complete with a forged token" DENIED agentfn_task_complete "$task" "$forged" '"forged"'
refused "fail with a forged token" DENIED agentfn_task_fail "$task" "$forged" forged
expect "state of $task after the forgeries" "$(fcall_ro agentfn_task_get "$task" | field state)" running
# A long handler renews its lease before it runs out; canceled 1 would tell it to stop.
expect "canceled" "$(fcall agentfn_task_extend "$task" "$token" LEASE_MS 60000 | field canceled)" 0
completed=$(fcall agentfn_task_complete "$task" "$token" '{"echo":"hello"}')
expect "state of $task" "$(field state <<<"$completed")" completed
expect "result of $task" "$(fcall_ro agentfn_task_get "$task" | field result)" '{"echo":"hello"}'
# Several attempts may end in one agentfn_task_complete_many (count, then task_id token result
# per item); an item it refuses (this attempt again, completed already: STALE) changes nothing.
again=$(fcall agentfn_task_complete_many 1 "$task" "$token" '"again"')
expect "complete_many of $task again" "$(field "$task" <<<"$again")" refused
expect "result of $task" "$(fcall_ro agentfn_task_get "$task" | field result)" '{"echo":"hello"}'
report task_completed "$task"

# --- 3. Failures ------------------------------------------------------------------------------
# Fail with RETRY yes, claim again, complete. BACKOFF_MS 0: the retry is due at once, so the
# next claim gets it without waiting (otherwise claim's next_due_ms says when it is due).
# TRACEPARENT: the submitter's W3C trace context; every claim of the task returns it, so each
# attempt's span can be its child.
traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
task=$(fcall agentfn_task_submit echo '{"text":"flaky"}' BACKOFF_MS 0 MAX_ATTEMPTS 3 \
  TRACEPARENT "$traceparent" | field id)
claimed=$(fcall agentfn_task_claim "$agent" "$secret" COUNT 1)
expect "claimed task" "$(field id <<<"$claimed")" "$task"
expect "traceparent" "$(field traceparent <<<"$claimed")" "$traceparent"
failed=$(fcall agentfn_task_fail "$task" "$(field token <<<"$claimed")" "upstream timed out" RETRY yes)
expect "state of $task after a retryable failure" "$(field state <<<"$failed")" queued
claimed=$(fcall agentfn_task_claim "$agent" "$secret" COUNT 1)
expect "claimed again" "$(field id <<<"$claimed")" "$task"
expect "attempt" "$(field attempt <<<"$claimed")" 2
expect "traceparent of the retry" "$(field traceparent <<<"$claimed")" "$traceparent"
completed=$(fcall agentfn_task_complete "$task" "$(field token <<<"$claimed")" '{"echo":"flaky"}')
expect "state of $task" "$(field state <<<"$completed")" completed
report task_retried "$task"

# Out of attempts, a task is dead (in the dead-letter stream) until it is requeued.
task=$(fcall agentfn_task_submit echo '{"text":"doomed"}' MAX_ATTEMPTS 1 | field id)
claimed=$(fcall agentfn_task_claim "$agent" "$secret" COUNT 1)
failed=$(fcall agentfn_task_fail "$task" "$(field token <<<"$claimed")" "bad gateway" RETRY yes)
expect "state of $task out of attempts" "$(field state <<<"$failed")" dead
expect "state of $task requeued" "$(fcall agentfn_task_requeue "$task" MAX_ATTEMPTS 1 | field state)" queued
claimed=$(fcall agentfn_task_claim "$agent" "$secret" COUNT 1)
completed=$(fcall agentfn_task_complete "$task" "$(field token <<<"$claimed")" '{"echo":"doomed"}')
expect "state of $task" "$(field state <<<"$completed")" completed
report task_requeued "$task"

# A queued task can be canceled; no agent will get it.
task=$(fcall agentfn_task_submit echo '{"text":"never mind"}' | field id)
expect "state before the cancel" "$(fcall agentfn_task_cancel "$task" | field was)" queued
report task_canceled "$task"
# Many tasks may be submitted in one agentfn_task_submit_many (count, then capability payload
# per item; the options apply to all of them): it replies their ids. Canceled here too.
many=$(fcall agentfn_task_submit_many 2 echo '"one"' echo '"two"' PRIORITY low)
expect "tasks submitted together" "$(wc -l <<<"$many" | tr -d ' ')" 2
for id in $many; do
  expect "state of $id before the cancel" "$(fcall agentfn_task_cancel "$id" | field was)" queued
done

# The reaper (any process may run it, agents do periodically) finds nothing to do here.
expect "expired leases" "$(fcall agentfn_reap LIMIT 100 | field expired_leases)" 0

# --- 4. A three-step workflow: fetch -> summarize -> publish --------------------------------
# Each step becomes a task once the steps it depends on have completed (in the same call that
# completes the last of them); its inputs are {"<dependency step>": <its result>, ...}.
workflow=$(fcall agentfn_wf_create '{"steps": [
  {"id": "fetch", "capability": "fetch", "input": {"url": "https://example.org"}},
  {"id": "summarize", "capability": "summarize", "depends_on": ["fetch"]},
  {"id": "publish", "capability": "publish", "depends_on": ["summarize"]}]}' \
  CONTEXT '{"topic":"redis"}' | field id)
inputs=""                                # a step with no dependencies gets no inputs
for step in fetch summarize; do
  claimed=$(fcall agentfn_task_claim "$agent" "$secret" COUNT 1)
  expect "step claimed" "$(field step <<<"$claimed")" "$step"
  expect "inputs of $step" "$(field inputs <<<"$claimed")" "$inputs"
  result="{\"text\":\"$step done\"}"
  completed=$(fcall agentfn_task_complete "$(field id <<<"$claimed")" "$(field token <<<"$claimed")" "$result")
  expect "state of step $step" "$(field state <<<"$completed")" completed
  inputs="{\"$step\":$result}"            # what the next step receives
done

# The steps share a context document; a write can be a compare-and-set on its version.
context=$(fcall_ro agentfn_ctx_get "$workflow")
expect "context" "$(field document <<<"$context")" '{"topic":"redis"}'
written=$(fcall agentfn_ctx_set "$workflow" '{"summary":"ready"}' MODE merge EXPECT_VERSION "$(field version <<<"$context")")
expect "context version" "$(field version <<<"$written")" 1

# publish asks for input: its attempt ends with a prompt, the step waits for a signal, and the
# signal runs it again with "_signal" added to its inputs.
claimed=$(fcall agentfn_task_claim "$agent" "$secret" COUNT 1)
expect "step claimed" "$(field step <<<"$claimed")" publish
fcall agentfn_task_complete "$(field id <<<"$claimed")" "$(field token <<<"$claimed")" null \
  INPUT_REQUIRED '{"question":"publish now?"}' >/dev/null
expect "steps waiting for input" "$(fcall_ro agentfn_wf_get "$workflow" STEPS no | field input_required)" 1
task=$(fcall agentfn_wf_signal "$workflow" publish '{"approved":true}' | field task)
claimed=$(fcall agentfn_task_claim "$agent" "$secret" COUNT 1)
expect "signaled step's task" "$(field id <<<"$claimed")" "$task"
expect "inputs of publish" "$(field inputs <<<"$claimed")" \
  '{"summarize":{"text":"summarize done"},"_signal":{"approved":true}}'
completed=$(fcall agentfn_task_complete "$task" "$(field token <<<"$claimed")" '{"text":"publish done"}')
expect "state of step publish" "$(field state <<<"$completed")" completed
expect "state of workflow $workflow" "$(fcall_ro agentfn_wf_get "$workflow" STEPS no | field state)" completed
report workflow "$workflow"

# Canceling a workflow cancels its unfinished steps and their tasks.
other=$(fcall agentfn_wf_create '{"steps": [{"id": "fetch", "capability": "fetch"}]}' | field id)
expect "state of workflow $other" "$(fcall agentfn_wf_cancel "$other" | field state)" canceled
report workflow_canceled "$other"

# --- 5. Messages: send, broadcast, read, acknowledge ----------------------------------------
# A message stays in the inbox, and comes back on every read, until it is acknowledged.
message=$(fcall agentfn_msg_send operator "$agent" question '{"text":"ready?"}' TTL_MS 60000 | field id)
broadcast=$(fcall agentfn_msg_broadcast operator echo announce '{"text":"new plan"}' | field "$agent")
refused "inbox read with a wrong secret" DENIED agentfn_msg_read "$agent" "$wrong_secret"
inbox=$(fcall agentfn_msg_read "$agent" "$secret" COUNT 10)
read_ids=$(awk 'previous == "id" { print } { previous = $0 }' <<<"$inbox" | paste -sd, -)
expect "messages read" "$read_ids" "$message,$broadcast"
expect "content" "$(field content <<<"$inbox")" '{"text":"ready?"}'
expect "messages removed by the ack" "$(fcall agentfn_msg_ack "$agent" "$secret" "$read_ids" | field removed)" 2
inbox=$(fcall agentfn_msg_read "$agent" "$secret")
expect "messages left after the ack" "$(field id <<<"$inbox")" ""
report message "$message"
report broadcast "$broadcast"

# --- 6. The agent leaves ----------------------------------------------------------------------
refused "deregister with a wrong secret" DENIED agentfn_agent_deregister "$agent" "$wrong_secret"
expect "tasks handed back" "$(fcall agentfn_agent_deregister "$agent" "$secret" | field released)" 0
