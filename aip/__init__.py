"""aip: distil a classifier for a real dataset from a single datum (The Augmented Image Prior).

The core is modality-agnostic: it reads a recipe, asks the modality plugin named in it for a source sampler,
an augmenter, models and evaluation data, and runs the distillation loop. Modalities live in separate packages
registered under the entry-point group ``aip.modalities``.
"""

from aip.errors import AipError, RecipeError

__version__ = "0.1.0"
__all__ = ["AipError", "RecipeError", "__version__"]
