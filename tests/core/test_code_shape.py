"""The shape the style guide asks of the core: no function in ``aip/`` is over 80 lines (a longer one holds
two steps that want names of their own)."""

from __future__ import annotations

import ast
from pathlib import Path

import aip

LIMIT = 80  # lines of a function, its signature, docstring and body together (def to its last line)


def long_functions(root: Path, limit: int = LIMIT) -> list[str]:
    """``path:line name (N lines)`` of each function or method under ``root`` longer than ``limit`` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_in_the_core_is_over_80_lines():
    assert long_functions(Path(aip.__file__).parent) == []


def test_the_check_finds_a_long_function_and_a_long_method(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    lines = [f"x{i} = {i}" for i in range(LIMIT - 1)]  # with the def line: exactly LIMIT lines
    (pkg / "ok.py").write_text("def fits():\n" + "".join(f"    {line}\n" for line in lines))
    method = "".join(f"        {line}\n" for line in [*lines, "y = 0"])  # one line more
    (pkg / "sub" / "long.py").write_text("class A:\n    async def over(self):\n" + method)
    assert long_functions(pkg) == [f"pkg/sub/long.py:2 over ({LIMIT + 1} lines)"]
