"""aip: distil a classifier for a real dataset from a single datum (The Augmented Image Prior).

The core is modality-agnostic: it reads a recipe, asks the modality plugin named in it for a source sampler,
an augmenter, models and evaluation data, and runs the distillation loop. Modalities live in separate packages
registered under the entry-point group ``aip.modalities``.

The Python API: :func:`distil` runs a recipe and returns ``(student, metrics)``; :func:`load_student` rebuilds
a distilled student from a run directory or an ``aip export`` folder, with ``.predict()`` for raw inputs.
They are imported on first use, so ``import aip`` stays light.
"""

from typing import Any

from aip.errors import AipError, RecipeError

__version__ = "0.1.0"
__all__ = ["AipError", "RecipeError", "Student", "__version__", "distil", "load_student"]

_LAZY = {"load_student": "aip.student", "Student": "aip.student", "distil": "aip.api"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aip' has no attribute {name!r}")
