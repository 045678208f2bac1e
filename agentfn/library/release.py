"""The release files: what a team without Python needs to deploy agentfn with redis-cli alone.

``release/`` in the checkout holds, generated from lua/ and migrations/ (``make release``, or
``agentfn render --release release``; a test fails when they are stale):

- ``agentfn.lua``: the rendered library, for ``redis-cli -x FUNCTION LOAD REPLACE``;
- ``migrations/NNNN_name.lua``: the data migrations, each run with ``EVAL`` (KEYS[1] = the
  namespace root) until it returns ``done``;
- ``record_schema.lua`` and ``unlock.lua``: the two scripts the migration runner uses to record
  a namespace's new schema version and release its lock.

``release/deploy.sh`` (hand-written, not generated) runs that sequence.
"""

from __future__ import annotations

from pathlib import Path

from .migrate import RECORD_SCRIPT, UNLOCK_SCRIPT, list_migrations
from .paths import migrations_dir
from .render import render_library

_RECORD_HEADER = """\
-- Record a namespace's new schema version after its migration NNNN returned 'done', only if the
-- namespace is still at NNNN - 1 (as agentfn's migration runner does).
-- KEYS[1] the namespace's meta hash, agentfn:{<namespace>}:meta; ARGV[1] NNNN as a number.
-- Sets schema_version in the meta hash and the schema key agentfn:{<namespace>}:schema.
-- returns 1 when recorded, 0 when the namespace was not at NNNN - 1.
"""

_UNLOCK_HEADER = """\
-- Release the namespace's migration lock, only if this runner still holds it.
-- KEYS[1] agentfn:{<namespace>}:migrate-lock; ARGV[1] the token the runner SET it to.
"""


def release_files() -> dict[str, str]:
    """Relative path -> text of every generated release file."""
    files = {"agentfn.lua": render_library().source}
    for migration in list_migrations(migrations_dir()):
        files[f"migrations/{migration.path.name}"] = migration.source()
    files["record_schema.lua"] = _RECORD_HEADER + RECORD_SCRIPT.lstrip("\n")
    files["unlock.lua"] = _UNLOCK_HEADER + UNLOCK_SCRIPT.lstrip("\n")
    return files


def stale_release_files(directory: Path) -> list[str]:
    """The release files under ``directory`` that are missing, differ, or should not be there."""
    expected = release_files()
    stale = [
        name
        for name, text in expected.items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    ]
    present = {
        path.relative_to(directory).as_posix() for path in (directory / "migrations").glob("*")
    }
    stale += sorted(present - set(expected))
    return stale


def write_release(directory: Path) -> list[str]:
    """Write the release files under ``directory`` (and drop migrations no longer shipped);
    returns the paths that changed."""
    changed = stale_release_files(directory)
    expected = release_files()
    for name in changed:
        path = directory / name
        if name in expected:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(expected[name], encoding="utf-8")
        else:
            path.unlink()
    return changed
