"""Where the Lua sources and the migrations live: inside an installed wheel, or in the checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
"""agentfn/: the wheel puts lua/ and migrations/ there as _lua/ and _migrations/."""
_CHECKOUT_DIR = _PACKAGE_DIR.parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"none of {', '.join(map(str, candidates))} exists")


def lua_dir() -> Path:
    """The folder holding library.lua.j2, includes/ and functions/."""
    return _first_existing(_PACKAGE_DIR / "_lua", _CHECKOUT_DIR / "lua")


def migrations_dir() -> Path:
    """The folder holding the numbered migrations."""
    return _first_existing(_PACKAGE_DIR / "_migrations", _CHECKOUT_DIR / "migrations")
