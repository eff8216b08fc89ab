"""The recipes that ship with aip, found by name: ``aip run fashion-mnist`` as well as a path to a TOML file.

The repository's top-level ``recipes/`` folder is the one source of them. The wheel carries it as the package
data folder ``aip/recipes`` (``pyproject.toml`` maps it there); in a source checkout or an editable install the
folder next to the ``aip`` package is read instead, so both see the same files without a copy.

A name resolves to ``recipes/NAME.toml`` (``recipes/sweeps/NAME.toml`` first for sweeps). A path that exists
is always taken as it is, so a local file named like a shipped recipe wins. A relative path under
``recipes/`` that does not exist here (the README's ``aip run recipes/fashion-mnist.toml`` run outside the
repository, after ``pip install aip``) is the shipped file of that name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from aip.errors import RecipeError

_PACKAGE = Path(__file__).resolve().parent


def recipes_dir() -> Path | None:
    """The shipped recipes folder: ``aip/recipes`` inside an installed wheel, else the source checkout's
    ``recipes/`` beside the package; ``None`` when neither exists."""
    for folder in (_PACKAGE / "recipes", _PACKAGE.parent / "recipes"):
        if folder.is_dir():
            return folder
    return None


def names(kind: Literal["recipe", "sweep"] = "recipe") -> list[str]:
    """The names of the shipped recipes (or sweep files), sorted."""
    folder = recipes_dir()
    if folder is None:
        return []
    folder = folder / "sweeps" if kind == "sweep" else folder
    return sorted(p.stem for p in folder.glob("*.toml"))


def _is_name(text: str) -> bool:
    return "/" not in text and "\\" not in text and not text.startswith(".") and Path(text).suffix in ("", ".toml")


def resolve(spec: str | Path, kind: Literal["recipe", "sweep"] = "recipe") -> Path:
    """The file that ``spec`` (a path, or the name of a shipped recipe or sweep) stands for.

    Raises:
        RecipeError: ``spec`` is neither an existing path nor a shipped name; the message lists the names.
    """
    path = Path(spec).expanduser()
    if path.exists():
        return path
    folder = recipes_dir()
    text = str(spec)
    if folder is not None and not path.is_absolute() and path.parts[:1] == ("recipes",) and len(path.parts) > 1:
        shipped = folder.joinpath(*path.parts[1:])
        return shipped if shipped.is_file() else path  # not shipped either: the caller's "does not exist" line
    if not _is_name(text):
        return path
    stem = Path(text).stem
    places = ["sweeps", ""] if kind == "sweep" else [""]
    for sub in places:
        if folder is not None and (candidate := folder / sub / f"{stem}.toml").is_file():
            return candidate
    shipped = names(kind) + (names("recipe") if kind == "sweep" else [])
    what = "a sweep file or recipe" if kind == "sweep" else "a recipe file"
    raise RecipeError(f"{text!r} is neither {what} here nor a shipped {kind} name; shipped: "
                      f"{', '.join(shipped) or 'none (the recipes folder is missing from this install)'}")
