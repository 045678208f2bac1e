#!/bin/sh
# Deploy agentfn with redis-cli alone (no Python): load the library, then migrate a namespace.
#
#   REDIS_URL=redis://:password@host:6379 sh release/deploy.sh [namespace]
#
# The namespace defaults to $AGENTFN_NAMESPACE, else 'default'. What `agentfn deploy` does:
#   1. FUNCTION LOAD REPLACE release/agentfn.lua, unless the same code (sha) is loaded already;
#      a newer library is not replaced (FORCE=1 replaces it anyway);
#   2. under the namespace's migration lock (SET agentfn:{ns}:migrate-lock <token> NX PX 60000),
#      each migration release/migrations/NNNN_*.lua newer than the namespace's schema_version
#      (HGET agentfn:{ns}:meta schema_version) runs with EVAL, KEYS[1] = agentfn:{ns}, until it
#      returns 'done' (it returns 'more' while it works in batches); then record_schema.lua
#      records NNNN; unlock.lua releases the lock.
# Running it again changes nothing. Exit status 1 with one line on stderr when something fails.
set -eu
here=$(dirname "$0")
# redis-cli wants a user before the password: redis://:pw@host becomes redis://default:pw@host.
url=$(echo "${REDIS_URL:-redis://127.0.0.1:6379}" | sed 's#^\(rediss*://\):#\1default:#')
shown=$(echo "$url" | sed 's#^\([a-z]*://[^:@/]*\):[^@]*@#\1:***@#')  # no password on screen
ns=${1:-${AGENTFN_NAMESPACE:-default}}
root="agentfn:{$ns}"
fail() { echo "deploy.sh: $*" >&2; exit 1; }
field() { awk -v name="$1" 'previous == name { print; exit } { previous = $0 }'; }
# One command; redis-cli exits 0 on an error reply, so its text is checked: an error fails.
r() {
  out=$(redis-cli -u "$url" --no-auth-warning --raw "$@" 2>&1) || fail "redis-cli $*: $out"
  case $out in
  ERR* | WRONGPASS* | NOAUTH* | NOPERM* | BUSY* | LOADING* | READONLY* | OOM* | MASTERDOWN* | \
    "AUTH failed"* | "Could not connect"*)
    fail "$(echo "$1 ${2:-}" | cut -c1-40 | sed 's/ *$//') on $shown: $(echo "$out" | head -n 1)" ;;
  esac
  printf '%s\n' "$out"
}

ours_sha=$(sed -n "s/^local CODE_SHA = '\(.*\)'$/\1/p" "$here/agentfn.lua")
ours=$(sed -n "s/^local LIBRARY_VERSION = '\(.*\)'$/\1/p" "$here/agentfn.lua")
r PING >/dev/null
deployed=$(redis-cli -u "$url" --no-auth-warning --raw FCALL_RO agentfn_version 1 "$root")
case $deployed in
*code_sha*)
  if [ "$(echo "$deployed" | field code_sha)" = "$ours_sha" ]; then
    echo "library agentfn $ours already loaded"
  else
    theirs=$(echo "$deployed" | field library)
    newest=$(printf '%s\n%s\n' "$theirs" "$ours" | sort -V | tail -n 1)
    if [ "$newest" != "$ours" ] && [ "${FORCE:-0}" != 1 ]; then
      fail "the loaded agentfn library $theirs is newer than $ours; FORCE=1 replaces it"
    fi
    r -x FUNCTION LOAD REPLACE <"$here/agentfn.lua" >/dev/null
    echo "loaded agentfn $ours (was $theirs)"
  fi
  ;;
*)
  r -x FUNCTION LOAD REPLACE <"$here/agentfn.lua" >/dev/null
  echo "loaded agentfn $ours"
  ;;
esac

current=$(r HGET "$root:meta" schema_version)
current=${current:-0}
token="deploy-sh-$$-$(date +%s)"
locked=
for file in "$here"/migrations/[0-9][0-9][0-9][0-9]_*.lua; do
  name=$(basename "$file")
  number=$(expr "$(echo "$name" | cut -c1-4)" + 0)
  [ "$number" -gt "$current" ] || continue
  if [ -z "$locked" ]; then
    [ "$(r SET "$root:migrate-lock" "$token" NX PX 60000)" = OK ] ||
      fail "another process is migrating namespace $ns (lock $root:migrate-lock)"
    locked=1
    trap 'r EVAL "$(cat "$here/unlock.lua")" 1 "$root:migrate-lock" "$token" >/dev/null' EXIT
  fi
  while :; do
    outcome=$(r EVAL "$(cat "$file")" 1 "$root") || fail "migration $name failed: $outcome"
    [ "$outcome" = done ] && break
    [ "$outcome" = more ] || fail "migration $name returned '$outcome', not 'done' or 'more'"
  done
  r EVAL "$(cat "$here/record_schema.lua")" 1 "$root:meta" "$number" >/dev/null
  r PEXPIRE "$root:migrate-lock" 60000 >/dev/null
  echo "applied $name to namespace $ns"
done
[ -n "$locked" ] || echo "namespace $ns up to date (schema $current)"
