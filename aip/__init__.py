"""aip: distil a classifier for a real dataset from a single datum (The Augmented Image Prior).

The core is modality-agnostic: it reads a recipe, asks the modality plugin named in it for a source sampler,
an augmenter, models and evaluation data, and runs the distillation loop. Modalities live in separate packages
registered under the entry-point group ``aip.modalities``.

The Python API: :func:`distil` runs a recipe and returns ``(student, metrics)``; :func:`load_student` rebuilds
a distilled student from a run directory, an ``aip export`` folder or a Hugging Face Hub repo id, with
``.predict()`` for raw inputs; :func:`push_to_hub` uploads an ``aip export`` folder (``aip.export.export``
writes one: not re-exported here, as the submodule ``aip.export`` would shadow it once imported).
They are imported on first use, so ``import aip`` stays light.
"""

from typing import Any

from aip.errors import AipError, RecipeError, UsageError

__version__ = "0.1.0"
__all__ = ["AipError", "RecipeError", "Student", "UsageError", "__version__", "distil", "load_student", "push_to_hub"]

_LAZY = {"load_student": "aip.student", "Student": "aip.student", "distil": "aip.api", "push_to_hub": "aip.hub"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aip' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API (lazy names included, which the module's ``__dict__`` lacks until first use) and the
    submodules already imported, as tab completion in a notebook shows them."""
    loaded = [k for k, v in globals().items() if not k.startswith("_") and type(v).__name__ == "module"]
    return sorted({*__all__, *loaded})
