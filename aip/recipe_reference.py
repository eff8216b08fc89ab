"""The recipe reference, docs/recipe-reference.md: a table per section of the core's recipe (key, type, default,
doc), generated from the dataclasses of :mod:`aip.config` and the ``#:`` comment above each field, so the page
cannot drift from the code. ``python -m aip.recipe_reference > docs/recipe-reference.md`` writes it; a test
holds that the committed page is what this gives and that no field lacks its comment.

The comments are read from the source (:mod:`ast`), as Sphinx's autodoc reads ``#:`` comments; aip keeps this
small reader rather than building the docs with Sphinx, which the project does not otherwise use.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import sys
import textwrap
import typing
from typing import Any

from aip import config

COMMAND = "python -m aip.recipe_reference > docs/recipe-reference.md"


def field_docs(cls: type) -> dict[str, str]:
    """Each field of the dataclass ``cls`` with a ``#:`` comment on the lines right above it, and that comment."""
    lines = textwrap.dedent(inspect.getsource(cls)).splitlines()
    docs = {}
    for node in ast.parse("\n".join(lines)).body[0].body:  # type: ignore[attr-defined]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above, i = [], node.lineno - 2
            while i >= 0 and lines[i].strip().startswith("#:"):
                above.insert(0, lines[i].strip()[2:].strip())
                i -= 1
            if above:
                docs[node.target.id] = " ".join(above)
    return docs


def sections() -> list[tuple[str, type]]:
    """``(key, dataclass)`` of the recipe's top level (key ``""``) and each core section inside it, in order."""
    found: list[tuple[str, type]] = []

    def walk(key: str, cls: type) -> None:
        found.append((key, cls))
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                walk(f"{key}.{f.name}".lstrip("."), hints[f.name])

    walk("", config.Recipe)
    return found


def _is_section(cls: type, name: str) -> bool:
    return dataclasses.is_dataclass(typing.get_type_hints(cls)[name])


def undocumented() -> list[str]:
    """The recipe keys whose field has no ``#:`` comment (a section is documented by its class docstring)."""
    missing = []
    for key, cls in sections():
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            if f.name not in docs and not _is_section(cls, f.name):
                missing.append(f"{key}.{f.name}".lstrip("."))
    return missing


def _value(v: Any) -> str:
    """A default as it is written in a recipe (TOML)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + "}"
    return repr(v)


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return f"`{_value(f.default)}`"
    if f.default_factory is not dataclasses.MISSING:
        return f"`{_value(f.default_factory())}`"
    return "required"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference() -> str:
    """The whole page, Markdown."""
    out = ["# Recipe reference", "",
           "Generated from the fields of `aip/config.py` and their `#:` comments; do not edit it by hand, run",
           f"`{COMMAND}`.", "How recipes are written, overridden and checked: [recipes.md](recipes.md). The",
           "`[source]` and `[augment]` sections belong to the modality (`aip list`; [video.md](video.md),",
           "[audio.md](audio.md)).", ""]
    for key, cls in sections():
        out += [f"## {f'[{key}]' if key else 'top level'}", "", (cls.__doc__ or "").strip().split("\n\n")[0], "",
                "| key | type | default | doc |", "| --- | --- | --- | --- |"]
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            default, doc = _default(f), docs.get(f.name, "")
            if _is_section(cls, f.name):  # its own table; its defaults are there
                default = "required" if default == "required" else "its defaults"
                doc = f"the `[{key}.{f.name}]` section below".replace("[.", "[")
            out.append(f"| `{f.name}` | `{_cell(str(f.type))}` | {_cell(default)} | {_cell(doc)} |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    missing = undocumented()
    if missing:
        print(f"aip.config: no #: comment above {', '.join(missing)}; document each field where it is declared",
              file=sys.stderr)
        return 1
    sys.stdout.write(reference())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
