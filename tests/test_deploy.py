"""Versioned deploy, downgrade refusal, migrations and the client's compatibility check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

import agentfn
from agentfn import keys
from agentfn.errors import DowngradeRefused, LibraryNotReady, MigrationError
from agentfn.library.deploy import deploy, deployed_library
from agentfn.library.migrate import list_migrations, migrate, schema_version
from agentfn.library.paths import migrations_dir
from agentfn.library.render import render_library

from .helpers import ROOT, fcall, pairs, secret_of

#: The schema version of the migrations shipped (the last one's number).
LATEST = len(list_migrations(migrations_dir()))


def function_load_calls(r: redis.Redis) -> int:
    stats = r.info("commandstats")
    return int(stats.get("cmdstat_function|load", {}).get("calls", 0))


def test_first_deploy_loads_and_migrates(r, library):
    report = deploy(r, "default")
    assert report.loaded and report.previous is None
    assert [m.number for m in report.migrations] == list(range(1, LATEST + 1))
    info = deployed_library(r, "default")
    assert info is not None
    assert (info.library, info.code_sha) == (agentfn.__version__, library.code_sha)
    assert info.schema_version == info.library_schema_version == library.schema_version == LATEST
    assert r.hget(keys.meta("default"), "created_ms")


def test_second_deploy_is_up_to_date_and_sends_no_function_load(r):
    deploy(r, "default")
    r.config_resetstat()
    report = deploy(r, "default")
    assert not report.loaded and report.migrations == []
    assert report.summary().startswith("up to date")
    assert function_load_calls(r) == 0


def test_deploy_cli_twice_says_up_to_date(r, redis_url):
    run = [sys.executable, "-m", "agentfn", "deploy", "--url", redis_url]
    first = subprocess.run(run, capture_output=True, text=True, check=True)
    assert first.stdout.startswith("loaded agentfn")
    second = subprocess.run(run, capture_output=True, text=True, check=True)
    assert second.stdout.startswith("up to date")


def test_changed_code_is_loaded_again(r):
    deploy(r, "default")
    changed = render_library()
    changed = type(changed)(
        changed.source + "\n-- changed\n", changed.version, "0" * 64, changed.schema_version
    )
    r.config_resetstat()
    report = deploy(r, "default", library=changed)
    assert report.loaded
    assert function_load_calls(r) == 1


def test_downgrade_is_refused_unless_forced(r):
    newer = render_library(version="9.0.0")
    deploy(r, "default", library=newer)
    with pytest.raises(DowngradeRefused, match="--force"):
        deploy(r, "default")
    assert deployed_library(r).library == "9.0.0"
    report = deploy(r, "default", force=True)
    assert report.loaded and deployed_library(r).library == agentfn.__version__


def test_client_names_the_command_when_library_missing(r):
    client = agentfn.Client(r, "default")
    with pytest.raises(LibraryNotReady, match="agentfn deploy"):
        client.agent_find("x")


def test_client_refuses_newer_major(r):
    deploy(r, "default", library=render_library(version="9.0.0"))
    with pytest.raises(LibraryNotReady, match="major"):
        agentfn.Client(r, "default").agent_find("x")


def test_client_refuses_newer_major_without_suggesting_a_downgrade(r):
    deploy(r, "default", library=render_library(version="9.0.0"))
    with pytest.raises(LibraryNotReady) as refused:
        agentfn.Client(r, "default").agent_find("x")
    assert "newer major version" in str(refused.value)
    assert "upgrade this package" in str(refused.value)
    assert "run: agentfn deploy" not in str(refused.value)


def test_client_of_a_new_major_names_the_upgrade_not_a_forced_deploy(r, monkeypatch):
    """A package of the next major version meets the library of this one (an upgrade 2.0 ->
    3.0 before the deploy): it says to stop the old agents and deploy, without --force (which
    deploy needs only to go back to an older library)."""
    deploy(r, "default")
    major = int(agentfn.__version__.split(".")[0])
    monkeypatch.setattr("agentfn.library.info.__version__", f"{major + 1}.0.0")
    with pytest.raises(LibraryNotReady) as refused:
        agentfn.Client(r, "default").agent_find("x")
    message = str(refused.value)
    assert f"stop the agents of {agentfn.__version__}, then run: agentfn deploy" in message
    assert "--force" not in message


def test_client_refuses_older_library(r, monkeypatch):
    """A library of this package's major version but older than the package is refused (the
    package claims a later minor version than the one deployed)."""
    major = agentfn.__version__.split(".")[0]
    deploy(r, "default", library=render_library(version=f"{major}.0.0"))
    monkeypatch.setattr("agentfn.library.info.__version__", f"{major}.1.0")
    with pytest.raises(LibraryNotReady, match="older.*agentfn deploy"):
        agentfn.Client(r, "default").agent_find("x")


def test_client_names_migrate_for_unmigrated_namespace(deployed):
    with pytest.raises(LibraryNotReady, match="agentfn migrate .*--namespace fresh"):
        agentfn.Client(deployed, "fresh").agent_find("x")


def test_async_client_checks_too(redis_proc, r):
    import asyncio

    import redis.asyncio

    async def scenario():
        async_redis = redis.asyncio.Redis(host=redis_proc.host, port=redis_proc.port)
        try:
            with pytest.raises(LibraryNotReady):
                await agentfn.AsyncClient(async_redis).agent_find("x")
            deploy(r, "default")
            client = agentfn.AsyncClient(async_redis)
            agent = await client.agent_register("a1", ["x"])
            found = await client.agent_find("x")
            return agent, found
        finally:
            await async_redis.aclose()

    agent, found = asyncio.run(scenario())
    assert agent.id == "a1" and [a.id for a in found] == ["a1"]


# A test-only migration: schema 2 renames every agent's metadata key "host" to "hostname".
TEST_MIGRATION = """
-- 0002_rename_host: test-only. Batched: rewrites up to 2 agents per call, returns 'more' until done.
local cursor_key = KEYS[1] .. ':meta'
local agents = redis.call('ZRANGE', KEYS[1] .. ':agents', 0, -1)
local changed = 0
for _, id in ipairs(agents) do
  local key = KEYS[1] .. ':agent:' .. id
  local metadata = cjson.decode(redis.call('HGET', key, 'metadata'))
  if metadata.host ~= nil then
    metadata.hostname = metadata.host
    metadata.host = nil
    redis.call('HSET', key, 'metadata', cjson.encode(metadata))
    changed = changed + 1
    if changed == 2 then return 'more' end
  end
end
return 'done'
"""


@pytest.fixture
def upgraded_migrations(tmp_path: Path) -> Path:
    directory = tmp_path / "migrations"
    directory.mkdir()
    for migration in list_migrations(migrations_dir()):
        shutil.copy(migration.path, directory / migration.path.name)
    number = len(list_migrations(directory)) + 1
    (directory / f"{number:04d}_rename_host.lua").write_text(TEST_MIGRATION)
    return directory


def test_upgrade_migrates_data_written_under_the_previous_schema(r, upgraded_migrations):
    deploy(r, "default")
    client = agentfn.Client(r, "default")
    for n in range(5):
        client.agent_register(f"a{n}", ["x"], metadata={"host": f"h{n}", "zone": "eu"})
    current = schema_version(r, "default")

    report = deploy(r, "default", migrations_directory=upgraded_migrations)
    assert report.loaded  # the new library expects the new schema
    assert [m.number for m in report.migrations] == [current + 1]
    assert schema_version(r, "default") == current + 1

    after = agentfn.Client(r, "default")
    found = {a.id: a.metadata for a in after.agent_find("x")}
    assert found == {f"a{n}": {"hostname": f"h{n}", "zone": "eu"} for n in range(5)}
    # Applying again is a no-op.
    assert migrate(r, "default", upgraded_migrations) == []


def test_old_library_refuses_a_namespace_on_a_newer_schema(r, upgraded_migrations):
    deploy(r, "default", migrations_directory=upgraded_migrations)
    newer_sha = deployed_library(r).code_sha
    with pytest.raises(MigrationError, match="newer"):
        deploy(r, "default", library=render_library(), force=True)
    assert deployed_library(r).code_sha == newer_sha  # refused before loading anything
    r.execute_command("FUNCTION", "LOAD", "REPLACE", render_library().source)
    with pytest.raises(redis.ResponseError, match="^VERSION"):
        fcall(r, "agentfn_agent_register", "a1", secret_of("a1"), "x")
    with pytest.raises(MigrationError, match="newer"):
        migrate(r, "default")


def test_schema_check_is_one_read_and_meta_decides_without_the_schema_key(deployed):
    """Every function checks the schema with one MGET of the root and the schema key (recorded
    with meta's schema_version); a namespace recorded without that key (schema_version written by
    hand, as the peers' examples do) or with a stale one is checked by meta's field instead."""
    r = deployed
    schema_key, meta = f"{ROOT}:schema", keys.meta("default")
    assert r.get(schema_key) == str(LATEST)
    r.config_resetstat()
    with pytest.raises(redis.ResponseError, match="^NOTFOUND"):
        fcall(r, "agentfn_task_get", "t404")
    stats = r.info("commandstats")
    assert stats["cmdstat_mget"]["calls"] == 1
    assert "cmdstat_hget" not in stats and "cmdstat_exists" not in stats

    for schema in (None, str(LATEST - 1)):  # missing, then stale: meta's field decides
        if schema is None:
            r.delete(schema_key)
        else:
            r.set(schema_key, schema)
        with pytest.raises(redis.ResponseError, match="^NOTFOUND"):  # the check passed
            fcall(r, "agentfn_task_get", "t404")
        r.hset(meta, "schema_version", LATEST - 1)
        with pytest.raises(
            redis.ResponseError, match=f"^VERSION namespace default has schema {LATEST - 1},"
        ):
            fcall(r, "agentfn_task_get", "t404")
        r.hset(meta, "schema_version", LATEST)


def test_migration_is_resumable_after_interruption(r, upgraded_migrations):
    deploy(r, "default")
    client = agentfn.Client(r, "default")
    client.agent_register("a1", ["x"], metadata={"host": "h1"})
    # Someone else holds the lock: nothing is applied and the error says why.
    r.set(keys.migrate_lock("default"), "other", px=60_000)
    with pytest.raises(MigrationError, match="another process"):
        migrate(r, "default", upgraded_migrations)
    assert schema_version(r, "default") == LATEST
    r.delete(keys.migrate_lock("default"))
    applied = migrate(r, "default", upgraded_migrations)
    assert [m.number for m in applied] == [LATEST + 1]
    assert not r.exists(keys.migrate_lock("default"))


def test_migration_numbers_must_not_have_gaps(tmp_path):
    (tmp_path / "0001_a.lua").write_text("return 'done'")
    (tmp_path / "0003_c.lua").write_text("return 'done'")
    with pytest.raises(MigrationError, match="0002 is missing"):
        list_migrations(tmp_path)


def test_version_cli_prints_package_and_deployed(deployed, redis_url):
    out = subprocess.run(
        [sys.executable, "-m", "agentfn", "version", "--url", redis_url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"package   agentfn {agentfn.__version__}" in out
    assert f"deployed  agentfn {agentfn.__version__}" in out


def test_agentfn_version_is_callable_read_only(deployed, library):
    reply = pairs(deployed.execute_command("FCALL_RO", "agentfn_version", 1, ROOT))
    assert reply == {
        "library": agentfn.__version__,
        "code_sha": library.code_sha,
        "schema_version": str(LATEST),
        "library_schema_version": str(LATEST),
    }
