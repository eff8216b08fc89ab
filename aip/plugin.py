"""The plugin SDK: everything a modality plugin uses from aip, in one import.

A plugin (``examples/aip-toy-plugin``, ``docs/plugins.md``) needs the protocol it implements and its optional
capabilities, the recipe's types (``Recipe[S, A]`` is generic in the plugin's own ``[source]`` and ``[augment]``
dataclasses, so ``recipe.source`` is typed), the checks its dataclasses run, a name registry, the errors the CLI
prints in one line, and the core's shared primitives (CutMix, device-side draws, atomic files, the cache,
class folders, figures). They live in a dozen core modules; this one gathers them so that a plugin writes::

    from aip.plugin import LabelledData, Recipe, Registry, check, cutmix

and its test suite calls :func:`aip.testing.check_modality`. Names are re-exported, not copied: each keeps its
home module and documentation.
"""

from __future__ import annotations

from aip.cache import cache_dir, dataset_root, download, local_file, synthetic_set
from aip.config import A, EvalConfig, Recipe, S, StudentConfig, TeacherConfig
from aip.errors import AipError, RecipeError, UsageError, one_line
from aip.extras import require
from aip.files import atomic_dir, atomic_path, regular_file, write_bytes, write_text
from aip.folders import check_links, class_names, empty_classes_error, split_classes, visible
from aip.graphs import beta, permutation
from aip.mixing import box_mask, cutmix
from aip.modality import (
    Augmenter,
    Capturable,
    DataLocator,
    DataPresence,
    InputReader,
    LabelledData,
    Modality,
    ReferencePipeline,
    SourceMeasures,
    SourceSampler,
    Visualizer,
    Visuals,
)
from aip.plot import save_figure
from aip.registry import Registry
from aip.sampling import DatasetSampler
from aip.schema import build, check, check_beta, check_probability

__all__ = [
    # the contract (aip.modality) and the recipe's types (aip.config)
    "A", "Augmenter", "Capturable", "DataLocator", "DataPresence", "EvalConfig", "InputReader", "LabelledData",
    "Modality", "Recipe", "ReferencePipeline", "S", "SourceMeasures", "SourceSampler", "StudentConfig",
    "TeacherConfig", "Visualizer", "Visuals",
    # recipe sections: checks (aip.schema); names to builders (aip.registry); errors (aip.errors)
    "AipError", "RecipeError", "Registry", "UsageError", "build", "check", "check_beta", "check_probability",
    "one_line",
    # primitives shared by modalities
    "DatasetSampler", "atomic_dir", "atomic_path", "beta", "box_mask", "cache_dir", "check_links", "class_names",
    "cutmix", "dataset_root", "download", "empty_classes_error", "local_file", "permutation", "regular_file", "require",
    "save_figure", "split_classes", "synthetic_set", "visible", "write_bytes", "write_text",
]
