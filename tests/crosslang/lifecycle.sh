#!/usr/bin/env bash
# The whole agentfn lifecycle with nothing but redis-cli: a reference for clients in any language.
#
#   agentfn render > library.lua      # or take library.lua from someone who has Python
#   REDIS_URL=redis://127.0.0.1:6379 AGENTFN_NAMESPACE=demo tests/crosslang/lifecycle.sh library.lua
#
# It loads the library with FUNCTION LOAD, initialises the namespace by running each migration
# with EVAL, then calls every function of the library, one FCALL per transition:
#   1. register an agent, heartbeat, find it by capability
#   2. wait for work (XREAD BLOCK on what an empty claim names), submit a task, claim it, renew
#      its lease, complete it, read it back
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
# the line after the first line that reads NAME.
set -euo pipefail

library=${1:?usage: lifecycle.sh LIBRARY_FILE (the output of agentfn render)}
url=${REDIS_URL:-redis://127.0.0.1:6379}
namespace=${AGENTFN_NAMESPACE:-crosslang}
migrations=${AGENTFN_MIGRATIONS:-$(dirname "$0")/../../migrations}
root="agentfn:{$namespace}"    # KEYS[1] of every call: the namespace root
agent=sh-agent-1

cli() { redis-cli -e -u "$url" "$@"; }    # -e: an error reply makes redis-cli exit non-zero
fcall() {                                # fcall FUNCTION ARG...: the namespace root is the one key
  echo "FCALL $1 1 $root ${*:2}" >&2
  cli FCALL "$1" 1 "$root" "${@:2}"
}
fcall_ro() {                             # for the functions flagged no-writes
  echo "FCALL_RO $1 1 $root ${*:2}" >&2
  cli FCALL_RO "$1" 1 "$root" "${@:2}"
}
field() { awk -v name="$1" 'found { print; exit } $0 == name { found = 1 }'; }
expect() {                               # expect WHAT ACTUAL EXPECTED
  [ "$2" = "$3" ] || { echo "lifecycle.sh: $1 is '$2', expected '$3'" >&2; exit 1; }
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
registered=$(fcall agentfn_agent_register "$agent" echo,fetch,summarize,publish \
  TTL_MS 60000 METADATA '{"language":"sh"}')
expect "agent status" "$(field status <<<"$registered")" live
expect "heartbeat" "$(fcall agentfn_agent_heartbeat "$agent" TTL_MS 60000 | field status)" live
expect "agents found for echo" "$(fcall_ro agentfn_agent_find echo LIMIT 10 | field id)" "$agent"
report agent "$agent"

# --- 2. Wait for work, submit, claim, complete ----------------------------------------------
# An idle agent's claim returns no task but the streams to wait on, each with an id. XREAD BLOCK
# on exactly those from exactly those ids returns as soon as a task lands in one of them after
# the claim (here it lands before the XREAD, and still wakes it: no lost wake-up). Then claim.
idle=$(fcall agentfn_task_claim "$agent" COUNT 1)
mapfile -t wait < <(awk '$0 == "next_due_ms" { exit } waiting { print } $0 == "wait" { waiting = 1 }' <<<"$idle")
streams=(); ids=()                       # wait is stream, id, stream, id...; XREAD wants streams then ids
for ((i = 0; i < ${#wait[@]}; i += 2)); do streams+=("${wait[i]}"); ids+=("${wait[i + 1]}"); done
task=$(fcall agentfn_task_submit echo '{"text":"hello"}' | field id)
expect "task that woke the agent" "$(cli XREAD BLOCK 5000 STREAMS "${streams[@]}" "${ids[@]}" | field task)" "$task"
claimed=$(fcall agentfn_task_claim "$agent" COUNT 1)
expect "claimed task" "$(field id <<<"$claimed")" "$task"
token=$(field token <<<"$claimed")       # the fencing token: it must come back with the result
# A long handler renews its lease before it runs out; canceled 1 would tell it to stop.
expect "canceled" "$(fcall agentfn_task_extend "$task" "$token" LEASE_MS 60000 | field canceled)" 0
completed=$(fcall agentfn_task_complete "$task" "$token" '{"echo":"hello"}')
expect "state of $task" "$(field state <<<"$completed")" completed
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
claimed=$(fcall agentfn_task_claim "$agent" COUNT 1)
expect "claimed task" "$(field id <<<"$claimed")" "$task"
expect "traceparent" "$(field traceparent <<<"$claimed")" "$traceparent"
failed=$(fcall agentfn_task_fail "$task" "$(field token <<<"$claimed")" "upstream timed out" RETRY yes)
expect "state of $task after a retryable failure" "$(field state <<<"$failed")" queued
claimed=$(fcall agentfn_task_claim "$agent" COUNT 1)
expect "claimed again" "$(field id <<<"$claimed")" "$task"
expect "attempt" "$(field attempt <<<"$claimed")" 2
expect "traceparent of the retry" "$(field traceparent <<<"$claimed")" "$traceparent"
completed=$(fcall agentfn_task_complete "$task" "$(field token <<<"$claimed")" '{"echo":"flaky"}')
expect "state of $task" "$(field state <<<"$completed")" completed
report task_retried "$task"

# Out of attempts, a task is dead (in the dead-letter stream) until it is requeued.
task=$(fcall agentfn_task_submit echo '{"text":"doomed"}' MAX_ATTEMPTS 1 | field id)
claimed=$(fcall agentfn_task_claim "$agent" COUNT 1)
failed=$(fcall agentfn_task_fail "$task" "$(field token <<<"$claimed")" "bad gateway" RETRY yes)
expect "state of $task out of attempts" "$(field state <<<"$failed")" dead
expect "state of $task requeued" "$(fcall agentfn_task_requeue "$task" MAX_ATTEMPTS 1 | field state)" queued
claimed=$(fcall agentfn_task_claim "$agent" COUNT 1)
completed=$(fcall agentfn_task_complete "$task" "$(field token <<<"$claimed")" '{"echo":"doomed"}')
expect "state of $task" "$(field state <<<"$completed")" completed
report task_requeued "$task"

# A queued task can be canceled; no agent will get it.
task=$(fcall agentfn_task_submit echo '{"text":"never mind"}' | field id)
expect "state before the cancel" "$(fcall agentfn_task_cancel "$task" | field was)" queued
report task_canceled "$task"

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
  claimed=$(fcall agentfn_task_claim "$agent" COUNT 1)
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
claimed=$(fcall agentfn_task_claim "$agent" COUNT 1)
expect "step claimed" "$(field step <<<"$claimed")" publish
fcall agentfn_task_complete "$(field id <<<"$claimed")" "$(field token <<<"$claimed")" null \
  INPUT_REQUIRED '{"question":"publish now?"}' >/dev/null
expect "steps waiting for input" "$(fcall_ro agentfn_wf_get "$workflow" STEPS no | field input_required)" 1
task=$(fcall agentfn_wf_signal "$workflow" publish '{"approved":true}' | field task)
claimed=$(fcall agentfn_task_claim "$agent" COUNT 1)
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
inbox=$(fcall agentfn_msg_read "$agent" COUNT 10)
read_ids=$(awk 'previous == "id" { print } { previous = $0 }' <<<"$inbox" | paste -sd, -)
expect "messages read" "$read_ids" "$message,$broadcast"
expect "content" "$(field content <<<"$inbox")" '{"text":"ready?"}'
expect "messages removed by the ack" "$(fcall agentfn_msg_ack "$agent" "$read_ids" | field removed)" 2
inbox=$(fcall agentfn_msg_read "$agent")
expect "messages left after the ack" "$(field id <<<"$inbox")" ""
report message "$message"
report broadcast "$broadcast"

# --- 6. The agent leaves ----------------------------------------------------------------------
expect "tasks handed back" "$(fcall agentfn_agent_deregister "$agent" | field released)" 0
