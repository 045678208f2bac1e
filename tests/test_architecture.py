"""The import contract of the agentfn package: no import cycles, and layers import downwards only.

Every import counts: at module level, inside functions (lazy), and under ``if TYPE_CHECKING``.
A module belongs to the layer of the longest prefix in LAYERS that names it; a new subpackage
(a feature such as agentfn.dashboard) gets its entry there before it may import anything.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "agentfn"

#: Module (or subpackage) -> layer rank. A module may import modules of its own rank or lower.
LAYERS: dict[str, int] = {
    # base modules: no agentfn imports beyond each other
    "agentfn.constants": 0,
    "agentfn.errors": 0,
    "agentfn.version": 0,
    "agentfn.keys": 0,
    "agentfn.replies": 0,
    "agentfn.server": 0,
    "agentfn.urls": 0,
    # the Lua library as data: render, protocol headers, deploy, migrate
    "agentfn.library": 1,
    # Client, AsyncClient, Batch and the per-area API
    "agentfn.client": 2,
    # the Agent and its runtime
    "agentfn.agent": 3,
    # features on top of client and agent (each a subpackage, none importing another)
    "agentfn.dashboard": 4,
    "agentfn.mcp": 4,
    "agentfn.a2a": 4,
    "agentfn.bridges": 4,
    # the command line
    "agentfn.cli": 5,
    # the facade: agentfn/__init__.py re-exports the public names, __main__ runs the CLI
    "agentfn": 6,
    "agentfn.__main__": 6,
}

#: Layers whose subpackages must not import each other (features stay independent).
INDEPENDENT_RANKS = {4}


def collect_modules(package_dir: Path = PACKAGE_DIR) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is_package) for every .py (and .pyi stub) under the package."""
    modules = {}
    for path in sorted([*package_dir.rglob("*.py"), *package_dir.rglob("*.pyi")]):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join(parts)] = (path, is_package)
    return modules


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every dotted name an import statement anywhere in the tree may refer to."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_edges(modules: dict[str, tuple[Path, bool]]) -> dict[str, set[str]]:
    """Module -> the agentfn modules it imports (the most specific module each name resolves to).

    Importing a module's own ancestor package (``from . import keys`` resolves to the sibling
    module, not the package) is not counted: Python runs it first anyway.
    """
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for module, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for name in _imported_names(tree, module, is_package):
            if name.split(".")[0] != "agentfn":
                continue
            target = name
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                edges[module].add(target)
    return edges


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


def layer_of(module: str) -> tuple[str, int]:
    """The LAYERS entry that owns ``module`` (its longest matching prefix) and its rank."""
    owner = max(
        (prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")),
        key=len,
        default=None,
    )
    if owner is None:
        raise KeyError(f"{module} belongs to no layer: add it (or its subpackage) to LAYERS")
    return owner, LAYERS[owner]


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    """Each import that goes up a layer, or across between two independent feature subpackages."""
    problems = []
    for module, targets in sorted(edges.items()):
        owner, rank = layer_of(module)
        for target in sorted(targets):
            target_owner, target_rank = layer_of(target)
            if target_rank > rank:
                problems.append(
                    f"{module} (layer {owner}) imports {target} from the higher layer {target_owner}"
                )
            elif target_rank == rank and rank in INDEPENDENT_RANKS and target_owner != owner:
                problems.append(f"{module} imports {target}: feature subpackages stay independent")
    return problems


@pytest.fixture(scope="module")
def edges() -> dict[str, set[str]]:
    return import_edges(collect_modules())


def test_every_module_belongs_to_a_layer(edges):
    for module in edges:
        layer_of(module)


def test_the_package_has_no_import_cycle(edges):
    assert find_cycles(edges) == []


def test_layers_import_downwards_only(edges):
    assert layer_violations(edges) == []


def test_the_checks_see_lazy_and_typing_imports_and_cycles(tmp_path):
    """The contract can fail: a cycle through a lazy import and an upward TYPE_CHECKING import."""
    package = tmp_path / "agentfn"
    (package / "client").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "keys.py").write_text("def f():\n    from .errors import X\n")
    (package / "errors.py").write_text("from . import keys\n")
    (package / "client" / "__init__.py").write_text("")
    (package / "client" / "client.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..cli.main import main\n"
    )
    (package / "cli").mkdir()
    (package / "cli" / "__init__.py").write_text("")
    (package / "cli" / "main.py").write_text("from ..client import client\n")
    found = import_edges(collect_modules(package))
    assert find_cycles(found) == [
        ["agentfn.cli.main", "agentfn.client.client"],
        ["agentfn.errors", "agentfn.keys"],
    ]
    assert layer_violations(found) == [
        "agentfn.client.client (layer agentfn.client) imports agentfn.cli.main from the higher layer agentfn.cli"
    ]


def test_every_cited_design_rule_resolves():
    """A comment citing "rule N" names a rule that docs/ARCHITECTURE.md numbers, and no comment
    cites a document the repository does not hold (DESIGN)."""
    root = PACKAGE_DIR.parent
    document = (root / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rules_section = document.split("## The rules the library rests on", 1)[1]
    numbered = {int(n) for n in re.findall(r"^(\d+)\. \*\*", rules_section, flags=re.M)}
    assert numbered == set(range(1, len(numbered) + 1)) and len(numbered) >= 10
    sources = [
        path
        for folder in ("agentfn", "lua", "bench", "examples", "tests")
        for pattern in ("*.py", "*.lua", "*.j2", "*.mjs", "*.sh")
        for path in (root / folder).rglob(pattern)
    ]
    cited = []
    for path in sources:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"DESIGN(\.md)? rule", text), f"{path} cites a missing document"
        cited += [(path.name, int(n)) for n in re.findall(r"ARCHITECTURE\.md rule (\d+)", text)]
    assert cited, "no citation found: the pattern is wrong"
    assert [(name, n) for name, n in cited if n not in numbered] == []


def test_the_layers_tree_of_architecture_md_lists_every_module():
    """docs/ARCHITECTURE.md's tree names every subpackage of agentfn/ and every module in it
    (a new module or subpackage, say mcp/, must be placed in its layer there too)."""
    document = (PACKAGE_DIR.parent / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    tree = document.split("## Layers", 1)[1].split("```", 2)[1].split("\nlua/", 1)[0]
    sections = dict(re.findall(r"^  (\w+)/(.*?)(?=^  \S|\Z)", tree, flags=re.M | re.S))
    missing = []
    for package in sorted(path.parent for path in PACKAGE_DIR.glob("*/__init__.py")):
        listed = set(re.findall(r"\w+", sections.get(package.name, "")))
        missing += [package.name + "/"] if package.name not in sections else []
        missing += [
            str(module.relative_to(PACKAGE_DIR))
            for module in sorted(package.rglob("*.py"))
            if module.stem != "__init__" and module.stem not in listed
        ]
    assert missing == []
