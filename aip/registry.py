"""Finding modalities (entry points) and mapping names to builders (registries).

The core never imports a modality. It looks modalities up by name in the entry-point group
``aip.modalities``; the built-in image adapter registers there exactly like a third-party package would.
Inside a modality, a :class:`Registry` maps recipe names (``"resnet18"``, ``"fashion-mnist"``) to builders.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from aip.errors import AipError, UsageError
from aip.modality import Modality

GROUP = "aip.modalities"
T = TypeVar("T")


class Registry(Generic[T]):
    """Names to objects, with errors that list the known names.

    Example:
        >>> MODELS = Registry("model")
        >>> @MODELS.register("tiny")
        ... def tiny(num_classes: int): ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            close = difflib.get_close_matches(name, list(self._items), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"unknown {self.kind} {name!r}{hint}; known: {', '.join(sorted(self._items))}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def installed_modalities() -> list[str]:
    """Names of every modality installed in this environment."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def load_modality(name: str) -> Modality:
    """Load the modality object registered under ``name`` in the ``aip.modalities`` entry-point group.

    Raises:
        AipError: if no installed package provides ``name`` (the message lists those installed).
    """
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not matches:
        known = ", ".join(installed_modalities()) or "none"
        raise UsageError(
            f"modality {name!r} is not installed; installed modalities: {known} "
            f"(install the package that provides it, or fix the recipe's 'modality' key)"
        )
    if matches[0].module.split(".")[0] == BUILTIN:
        check_builtin_package()
    try:
        modality = matches[0].load()
    except AipError:  # the plugin's own one-line message (e.g. a missing optional dependency)
        raise
    except Exception as e:  # a broken plugin must not take the CLI down with a traceback
        raise AipError(f"modality {name!r} is installed but failed to import ({type(e).__name__}: {e}); "
                       f"reinstall or fix the package that provides it ({matches[0].value})") from None
    modality = modality() if isinstance(modality, type) else modality
    missing = [m for m in _REQUIRED if not hasattr(modality, m)]
    if missing:
        raise AipError(f"modality {name!r} ({matches[0].value}) does not provide {', '.join(missing)} of the "
                       "aip.modality.Modality protocol; update the package that provides it (see docs/plugins.md)")
    return modality


#: the top-level package of aip's built-in modalities (the repository's modalities/ folder)
BUILTIN = "modalities"


def check_builtin_package() -> None:
    """Refuse, in one line, a ``modalities`` package that is not aip's.

    An unrelated project on the package index is also called ``modalities``; installed into the same environment,
    the two write the same top-level folder and overwrite each other's files. aip's package sets
    ``modalities.__aip__ = True``; a ``modalities`` without it (the other project's ``__init__.py``, or another
    folder of that name earlier on ``sys.path``) is named with the fix instead of failing later on a missing
    submodule or, worse, running someone else's code under aip's names. (Renaming the package would avoid the clash
    but break every ``import modalities...`` of plugins and user code; README's install notes say more.)"""
    import importlib
    import importlib.util

    try:
        package = importlib.import_module(BUILTIN)
    except Exception as e:  # the other project's package may fail to import without its own dependencies
        found, problem = None, f"does not import ({type(e).__name__}: {' '.join(str(e).split())})"
    else:
        found, problem = package, "is not aip's"
    if found is not None and getattr(found, "__aip__", False) is True:
        return
    try:
        spec = importlib.util.find_spec(BUILTIN)
    except (ImportError, ValueError):
        spec = None
    where = (spec.origin or ", ".join(spec.submodule_search_locations or [])) if spec else "not found"
    raise AipError(f"the package 'modalities' ({where}) {problem}: the unrelated project 'modalities' from the "
                   "package index shares that name with aip's built-in modalities; install aip into a virtualenv of "
                   "its own (python -m venv NEW_ENV), or `pip uninstall modalities` and then `pip install "
                   "--force-reinstall aip`")


#: what every modality must have (:class:`aip.modality.Modality`)
_REQUIRED = [m for m in dir(Modality) if not m.startswith("_")] + ["name", "SourceConfig", "AugmentConfig"]
