"""Reading a recipe: a TOML file (or plain data), ``--set`` overrides, the modality's own sections.

What a recipe *is* (its frozen dataclasses, with each field documented) lives in :mod:`aip.config`; this module
turns text into one. ``--set section.key=value`` overrides are applied to the raw data before validation, so
they are checked like the file itself; the ``[source]`` and ``[augment]`` sections are built with the dataclasses
of the modality the recipe names. The dataclass names are re-exported here (``from aip.recipe import Recipe``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

from aip import files
from aip.config import (
    SECTIONS,
    EvalConfig,
    LossConfig,
    Recipe,
    StudentConfig,
    TeacherConfig,
    TeacherFit,
    TrainConfig,
)
from aip.errors import RecipeError
from aip.registry import load_modality
from aip.schema import build

__all__ = ["EvalConfig", "LossConfig", "Recipe", "StudentConfig", "TeacherConfig", "TeacherFit", "TrainConfig",
           "apply_overrides", "from_dict", "load", "parse_override", "read_toml", "save"]

_TOP_KEYS = {"modality", "name", "description", "source", "augment", *SECTIONS}

#: the deepest nesting of tables and arrays read below the top-level table (the shipped recipes need 2,
#: ``[teacher.fit]`` or a list in ``[source]``, and sweeps 4, a list of lists in an axis); deeper data is
#: refused before it reaches code that recurses (the TOML parser, the schema, the TOML and JSON writers), where
#: some thousand levels end in a RecursionError
MAX_DEPTH = 32


def _nesting(value: Any) -> tuple[int, str]:
    """How many tables or arrays are nested in ``value`` (a scalar: 0, ``[1, 2]``: 1, ``{a = [1]}``: 2), and the
    key of the deepest, relative to ``value``. Walks with an explicit stack, so it never recurses itself."""
    deepest, where = 0, ""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, key, depth = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        depth += 1
        if depth > deepest:
            deepest, where = depth, key
        if depth > MAX_DEPTH + 1:  # deep enough to refuse: no need to walk the rest
            break
        pairs = node.items() if isinstance(node, dict) else ((f"[{i}]", v) for i, v in enumerate(node))
        stack += [(v, f"{key}.{k}" if isinstance(node, dict) else f"{key}{k}", depth) for k, v in pairs]
    return deepest, where.lstrip(".")


def _depth_error(where: str, key: str = "") -> RecipeError:
    at = f" (at {key[:60]}{'...' if len(key) > 60 else ''})" if key else ""
    return RecipeError(f"{where} nests tables or arrays more than {MAX_DEPTH} levels deep{at}; aip reads at most "
                       f"{MAX_DEPTH} (the shipped recipes and sweeps need 4 at most): flatten it")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=3"`` -> ``(["train", "epochs"], 3)``; the value is read as TOML, else as a string."""
    if "=" not in text:
        raise RecipeError(f"override {text!r} must look like section.key=value (e.g. train.epochs=3)")
    key, raw = text.split("=", 1)
    path = [p.strip() for p in key.strip().split(".")]
    if not all(path):
        raise RecipeError(f"override {text!r} has an empty key part")
    where = f"override {'.'.join(path)}=..."
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    except RecursionError:  # the parser recurses once per level: only data far deeper than MAX_DEPTH gets here
        raise _depth_error(where) from None
    depth, key = _nesting(value)
    if len(path) - 1 + depth > MAX_DEPTH:  # the value sits len(path) - 1 tables below the top level
        raise _depth_error(where, ".".join(path) + (key if key.startswith("[") else f".{key}" if key else ""))
    return path, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(f"override {text!r}: {part} is not a section")
        node[path[-1]] = value
    return data


def read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        raise RecipeError(f"recipe file {p} is a folder; give a .toml file in it (e.g. recipes/fashion-mnist.toml)")
    if not p.is_file():
        if p.exists():  # a FIFO, a device, a socket: say what it is (reading a FIFO would wait for a writer)
            raise RecipeError(f"recipe file {p} is not a regular file but {files.describe(p)}; give a .toml file")
        raise RecipeError(f"recipe file {p} does not exist (check the path; shipped recipes are in recipes/)")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8-sig"))  # -sig: skip a byte-order mark (some editors)
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"recipe file {p} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise RecipeError(f"recipe file {p} is not a UTF-8 text file") from None
    except RecursionError:  # nested arrays or inline tables, far deeper than MAX_DEPTH
        raise _depth_error(f"recipe file {p}") from None
    depth, key = _nesting(data)
    if depth - 1 > MAX_DEPTH:  # the top-level table is not a level
        raise _depth_error(f"recipe file {p}", key)
    return data


def from_dict(data: dict[str, Any], *, default_name: str = "run", check_files: bool = True) -> Recipe:
    """Validate plain recipe data (as read from TOML, overrides applied) into a :class:`Recipe`.

    ``check_files=False`` skips the modality's own checks (which may look for the source file or dataset):
    for rebuilding the models of a finished run elsewhere (:func:`aip.student.load_student`)."""
    for k in data:
        if k not in _TOP_KEYS:
            raise RecipeError(f"unknown recipe key {k!r}; top-level keys: {', '.join(sorted(_TOP_KEYS))}")
    if not isinstance(data.get("modality"), str):
        raise RecipeError("recipe key modality is required (a string such as 'image'); see `aip list`")
    modality = load_modality(data["modality"])
    kwargs: dict[str, Any] = {
        "modality": data["modality"],
        "source": build(modality.SourceConfig, data.get("source", {}), "source"),
        "augment": build(modality.AugmentConfig, data.get("augment", {}), "augment"),
        "name": data.get("name", default_name),
        "description": data.get("description", ""),
    }
    for key in ("name", "description"):
        if not isinstance(kwargs[key], str):
            raise RecipeError(f"recipe key {key}: expected a string, got {kwargs[key]!r}")
    for section, cls in SECTIONS.items():
        if section in data or section in ("loss", "train"):
            kwargs[section] = build(cls, data.get(section, {}), section)
        else:
            raise RecipeError(f"recipe section [{section}] is missing")
    recipe = Recipe(**kwargs)
    validate = getattr(modality, "validate", None)
    if validate is not None and check_files:
        validate(recipe)
    return recipe


def load(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate the recipe at ``path``.

    Raises:
        RecipeError: naming the first bad key and what it allows.
    """
    data = apply_overrides(read_toml(path), list(overrides or []))
    return from_dict(data, default_name=Path(path).stem)


def save(recipe: Recipe, path: Path) -> None:
    path.write_text(recipe.to_toml())
