"""Data migrations between schema versions, applied in order and recorded per namespace.

A migration is ``migrations/NNNN_name.lua``: a Lua script run with EVAL and KEYS[1] set to the
namespace root. It must be idempotent. A migration with much data to move works in batches:
it returns ``'more'`` until it returns ``'done'``, so an interrupted run resumes where it stopped.
After ``'done'`` the runner records ``schema_version = NNNN`` in the namespace's meta hash, only
if the recorded version is still NNNN - 1, and sets the schema key ``agentfn:{ns}:schema`` to
NNNN as well (the library checks that key first: one read that also detects a cluster slot being
moved; see check_schema in lua/includes/validate.lua). One process migrates a namespace at a
time (a lock).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import redis

from .. import keys
from ..errors import MigrationError

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.lua$")

#: How long the migration lock is held at most if its holder dies (ms).
LOCK_TTL_MS = 60_000

#: Most batches one migration may ask for before the runner gives up.
MAX_BATCHES = 1_000_000

# Records the new schema version if the namespace is still at the previous one: in the meta hash
# (KEYS[1]) and in the schema key beside it (same hash tag, so the same cluster slot).
RECORD_SCRIPT = """
local current = tonumber(redis.call('HGET', KEYS[1], 'schema_version') or '0')
if current == tonumber(ARGV[1]) - 1 then
  local time = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'schema_version', ARGV[1], 'migrated_ms',
    tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
  redis.call('SET', (string.gsub(KEYS[1], ':meta$', ':schema')), ARGV[1])
  return 1
end
return 0
"""

# Releases the lock only if this runner still holds it.
UNLOCK_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    number: int
    name: str
    path: Path

    def source(self) -> str:
        return self.path.read_text(encoding="utf-8")


def list_migrations(directory: Path) -> list[Migration]:
    """The migrations in a folder, in order; numbers must run 1, 2, 3... without gaps."""
    found = []
    for path in sorted(directory.glob("*.lua")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.lua")
        found.append(Migration(int(match[1]), match[2], path))
    for expected, migration in enumerate(found, start=1):
        if migration.number != expected:
            raise MigrationError(
                f"migration {expected:04d} is missing before {migration.path.name}"
            )
    return found


def schema_version(client: redis.Redis, namespace: str) -> int:
    """The schema version recorded for a namespace (0 when it was never migrated)."""
    value = client.hget(keys.meta(namespace), "schema_version")
    return int(value) if value is not None else 0


def migrate(
    client: redis.Redis, namespace: str | None = None, directory: Path | None = None
) -> list[Migration]:
    """Apply every pending migration to a namespace ($AGENTFN_NAMESPACE, else ``default``, when
    None); returns the ones applied."""
    from .paths import migrations_dir

    namespace = keys.resolve_namespace(namespace)
    migrations = list_migrations(directory or migrations_dir())
    current = schema_version(client, namespace)
    if current > len(migrations):
        raise MigrationError(
            f"namespace {namespace} has schema {current}, newer than this package's "
            f"{len(migrations)}: upgrade agentfn"
        )
    pending = [m for m in migrations if m.number > current]
    if not pending:
        return []
    lock_key, token = keys.migrate_lock(namespace), secrets.token_hex(16)
    if not client.set(lock_key, token, nx=True, px=LOCK_TTL_MS):
        raise MigrationError(
            f"another process is migrating namespace {namespace} (lock {lock_key})"
        )
    applied = []
    try:
        for migration in pending:
            _run(client, namespace, migration)
            client.eval(RECORD_SCRIPT, 1, keys.meta(namespace), migration.number)
            applied.append(migration)
            client.pexpire(lock_key, LOCK_TTL_MS)
    finally:
        client.eval(UNLOCK_SCRIPT, 1, lock_key, token)
    return applied


def _run(client: redis.Redis, namespace: str, migration: Migration) -> None:
    source = migration.source()
    for _ in range(MAX_BATCHES):
        try:
            outcome = client.eval(source, 1, keys.root(namespace))
        except redis.ResponseError as error:
            raise MigrationError(f"migration {migration.path.name} failed: {error}") from error
        if isinstance(outcome, bytes):
            outcome = outcome.decode()
        if outcome == "done":
            return
        if outcome != "more":
            raise MigrationError(
                f"migration {migration.path.name} returned {outcome!r}, not 'done' or 'more'"
            )
    raise MigrationError(f"migration {migration.path.name} did not finish in {MAX_BATCHES} batches")
