"""Run every benchmark present (bench/tasks.py, messages.py, workflows.py, dashboard.py,
json_check.py, bounded.py) and write bench/RESULTS.md: one table per benchmark, figure / target /
measured / pass. With ``--only``, the sections of the benchmarks not run are kept as they were.

``make bench`` runs this. Each module exposes ``run() -> dict`` and starts its own redis-server.
A figure's value is either a plain number (measured, no target), or a dict with ``measured``,
``target`` (text, e.g. ">= 5,000"), ``pass`` (True, False or None) and optionally ``unit``;
a ``details`` entry (markdown text) is printed under the module's table. Hand-written notes
below the line NOTES_MARKER in bench/RESULTS.md are kept when the file is written again.

    .venv/bin/python bench/run.py [--only tasks,messages] [--output bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
#: The benchmark modules, in the order they run and appear.
MODULES = ("tasks", "messages", "workflows", "dashboard", "json_check", "bounded")
#: Everything from this line on in the results file is hand-written analysis, kept across runs.
NOTES_MARKER = "<!-- analysis below is written by hand and kept by bench/run.py -->"


#: Targets of the issues for figures that a module reports as plain numbers:
#: module -> figure -> (target text, test of the measured value).
TARGETS: dict[str, dict[str, tuple[str, Any]]] = {
    "messages": {
        "send_single_per_s": (">= 5,000", lambda v: v >= 5_000),
        "receive_single_per_s": (">= 5,000", lambda v: v >= 5_000),
        "send_pipelined_per_s": (">= 5,000", lambda v: v >= 5_000),
        "receive_batched_per_s": (">= 5,000", lambda v: v >= 5_000),
        "request_reply_p50_ms": ("<= 2", lambda v: v <= 2),
    },
    "workflows": {
        "chain_steps_per_s": (">= 3,000", lambda v: v >= 3_000),
        "fan_out_fan_in_steps_per_s": (">= 3,000", lambda v: v >= 3_000),
        "create_graph_ms_median": ("< 50", lambda v: v < 50),
    },
}


def with_targets(module: str, results: dict[str, Any]) -> dict[str, Any]:
    """``results`` with the TARGETS of ``module`` attached to its plain-number figures."""
    out = dict(results)
    for figure, (target, passes) in TARGETS.get(module, {}).items():
        value = out.get(figure)
        if isinstance(value, (int, float)):
            out[figure] = {"measured": value, "target": target, "pass": bool(passes(value))}
    return out


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(results: dict[str, Any]) -> list[str]:
    """The markdown lines for one module's results (and its details, if any)."""
    lines = ["| figure | target | measured | pass |", "| --- | --- | ---: | :---: |"]
    details = results.get("details")
    for name, value in results.items():
        if name == "details":
            continue
        if isinstance(value, dict) and "measured" in value:
            measured = _cell(value["measured"]) + (f" {value['unit']}" if value.get("unit") else "")
            verdict = {True: "yes", False: "**no**", None: ""}[value.get("pass")]
            lines.append(f"| {name} | {value.get('target', '')} | {measured} | {verdict} |")
        else:
            lines.append(f"| {name} | | {_cell(value)} | |")
    if details:
        lines += ["", str(details)]
    return lines


def _sections(text: str) -> dict[str, list[str]]:
    """The module sections ("## name (...)" up to the next "## ") of a results file, by name."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].split(" ")[0], [])
        if current is not None:
            current.append(line)
    return sections


def _machine() -> str:
    try:
        server = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.split()
        redis_version = next((part.split("=")[1] for part in server if part.startswith("v=")), "?")
    except (OSError, subprocess.SubprocessError):
        redis_version = "?"
    parser = (
        "hiredis" if importlib.util.find_spec("hiredis") else "pure-Python RESP parser (no hiredis)"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"redis-server {redis_version}, redis-py with {parser}; load average {load:.2f} at the start"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default="", help="comma-separated module names (default: every one present)"
    )
    parser.add_argument(
        "--output", default=str(BENCH / "RESULTS.md"), help="where to write the results"
    )
    options = parser.parse_args()
    wanted = [name for name in options.only.split(",") if name] or list(MODULES)
    present = [name for name in wanted if (BENCH / f"{name}.py").exists()]
    written = f"Written by `make bench` (bench/run.py) on {datetime.date.today().isoformat()}: {_machine()}."
    if present != list(MODULES):
        written += f" This run: {', '.join(present)}; the other sections are from an earlier run."
    lines = ["# Benchmark results", "", written, ""]
    sections: dict[str, list[str]] = {}
    failed = False
    for name in present:
        print(f"== bench/{name}.py", flush=True)
        began = time.perf_counter()
        try:
            results = with_targets(name, _load(name).run())
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            failed = True
            traceback.print_exc()
            sections[name] = [
                f"## {name}",
                "",
                "Failed:",
                "",
                "```",
                traceback.format_exc().strip(),
                "```",
                "",
            ]
            continue
        elapsed = time.perf_counter() - began
        section = [f"## {name} ({elapsed:.0f} s)", "", *table(results), ""]
        print("\n".join(section), flush=True)
        sections[name] = section
    output = Path(options.output)
    previous = output.read_text(encoding="utf-8") if output.exists() else ""
    notes = previous[previous.index(NOTES_MARKER) :] if NOTES_MARKER in previous else ""
    sections.update(
        (name, lines)
        for name, lines in _sections(previous[: len(previous) - len(notes)]).items()
        if name in MODULES and name not in present
    )
    lines += [line for name in MODULES for line in sections.get(name, [])]
    output.write_text(
        "\n".join(lines).rstrip() + "\n" + ("\n" + notes if notes else ""), encoding="utf-8"
    )
    print(f"wrote {options.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
