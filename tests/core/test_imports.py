"""No import circle in aip/, modalities/ or the example plugin: the module-level import graph is acyclic.

Every module is parsed with ``ast`` (nothing is imported). An edge ``a -> b`` is an ``import`` or ``from ... import``
that runs when ``a`` is imported: at module level, in a class body, under ``if``/``try`` (``if TYPE_CHECKING:``
included, since a circle of types is still a circle of concepts); imports inside functions are deferred and do not
count. ``from pkg import name`` is an edge to ``pkg`` (its ``__init__`` runs first) and, where ``pkg.name`` is a
module, to it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TREES = [ROOT / "aip", ROOT / "modalities", ROOT / "examples" / "aip-toy-plugin" / "aip_toy"]


def modules(trees: list[Path]) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's ``__init__``), named from each tree's parent folder."""
    found = {}
    for tree in trees:
        for path in sorted(tree.rglob("*.py")):
            parts = list(path.relative_to(tree.parent).with_suffix("").parts)
            package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if package else parts)] = (path, package)
    return found


def _imported(nodes: list[ast.stmt], *, package: str) -> list[str]:
    """The dotted names imported when these statements run (function bodies skipped)."""
    names: list[str] = []
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: "." is this package, ".." its parent
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names += [module] + [f"{module}.{a.name}" for a in node.names]
        else:
            for attr in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, attr, None)
                if isinstance(children, list):
                    names += _imported([c for c in children if isinstance(c, ast.AST)], package=package)
    return names


def import_graph(trees: list[Path]) -> dict[str, set[str]]:
    """Module -> the modules of ``trees`` it imports at import time."""
    mods = modules(trees)
    graph = {}
    for name, (path, package) in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        here = name if package else name.rpartition(".")[0]
        graph[name] = {m for m in _imported(tree.body, package=here) if m in mods and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle as ``[a, b, ..., a]``, or ``[]`` when the graph is acyclic (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def test_no_import_circle_in_the_tree() -> None:
    graph = import_graph(TREES)
    assert {"aip.recipe", "aip.config", "aip.modality", "modalities.image.inputs", "aip_toy"} <= set(graph)
    assert "aip.config" in graph["aip.recipe"] and "aip.registry" in graph["aip.recipe"]  # the graph sees edges
    cycle = find_cycle(graph)
    assert not cycle, "import circle: " + " -> ".join(cycle)


def test_the_recipes_data_imports_no_reader() -> None:
    """What a recipe is (aip.config) needs neither the reader nor the modality registry."""
    graph = import_graph(TREES)
    assert not graph["aip.config"] & {"aip.recipe", "aip.registry", "aip.modality"}
    assert "modalities.image.datasets" not in graph["modalities.image.inputs"]


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root / "pkg"


@pytest.mark.parametrize(("a_text", "circle"), [
    ("from pkg import b\n", True),
    ("from . import b\n", True),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import f\n", True),
    ("class C:\n    import pkg.b\n", True),
    ("def f():\n    from pkg import b\n", False),  # deferred: not an edge
    ("import os\n", False),
])
def test_the_checker_finds_a_planted_circle(tmp_path: Path, a_text: str, circle: bool) -> None:
    pkg = _write(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": a_text, "pkg/b.py": "from pkg.a import x\n"})
    cycle = find_cycle(import_graph([pkg]))
    assert bool(cycle) == circle, cycle
    if circle:
        assert cycle[0] == cycle[-1] and {"pkg.a", "pkg.b"} <= set(cycle)


def test_no_test_file_imports_another() -> None:
    """Test files share helpers through tests/conftest.py alone: a test module imported by another runs its
    module code twice and couples two files' fixtures."""
    tests = ROOT / "tests"
    modules = {p.stem for p in tests.rglob("*.py")}  # the test files and helpers of every wing
    offenders = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for name in names:
                last = name.split(".")[-1]
                local = name.startswith("tests.") or last in modules and "." not in name
                if local and last != "conftest":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not offenders, "import from tests.conftest instead: " + "; ".join(offenders)
