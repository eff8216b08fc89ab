"""Preflight: whether a valid recipe's run can start on this machine, one check per thing it needs.

``aip check RECIPE`` validates the recipe (the schema and the modality's own checks) and then prints these
checks; ``aip check --preflight`` also exits with 1 when one of them says the run cannot start here without a
network or without files the user must provide. The checks look, they never download, build or train:

- ``dataset``: the test split of ``eval.dataset`` where the modality reads it (its optional
  :class:`~aip.modality.DataLocator` capability);
- ``source``: the single datum (``source.uri``): a readable file, a cached URL, or one the modality makes;
- ``teacher``: a trained teacher in the cache, a checkpoint file, or library weights;
- ``device``: the ``--device`` the run would take;
- ``memory``: whether the teacher and student, built on the meta device, fit in that device's memory
  (:mod:`aip.footprint`; a 10-class head, as the class count needs the dataset).

Each check ends in one of :data:`STATES`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from aip.errors import AipError, one_line

if TYPE_CHECKING:
    from aip.recipe import Recipe

State = Literal["ready", "build", "download", "missing", "unchecked"]
#: ready: here now; build: made here on first use, offline (a teacher trained, a synthetic set built);
#: download: fetched on first use (needs the network); missing: the run cannot start until the user provides it;
#: unchecked: this check cannot tell (e.g. a library's own weight cache)
STATES: tuple[State, ...] = ("ready", "build", "download", "missing", "unchecked")
#: the states that make ``aip check --preflight`` exit with 1
BLOCKING: frozenset[State] = frozenset({"download", "missing"})


@dataclass(frozen=True)
class Check:
    """One line of the preflight: what was checked, its state and a sentence saying what was found."""

    name: str
    state: State
    detail: str

    def line(self) -> str:
        return f"{self.name:<8} {self.state:<9} {self.detail}"


def dataset_check(recipe: Recipe) -> Check:
    from aip.modality import DataLocator
    from aip.registry import load_modality

    modality = load_modality(recipe.modality)
    if not isinstance(modality, DataLocator):
        return Check("dataset", "unchecked", f"the {recipe.modality} modality cannot say where "
                                             f"{recipe.eval.dataset} is")
    found = modality.data_presence(recipe)
    if found.present:
        return Check("dataset", "ready", f"{recipe.eval.dataset}: {found.detail} ({found.where})")
    if found.fetch == "download":
        return Check("dataset", "download", f"{recipe.eval.dataset} not present in {found.where}, would download "
                                            "on first use (needs the network)")
    if found.fetch == "build":
        return Check("dataset", "build", f"{recipe.eval.dataset} not present in {found.where}, built here on first "
                                         "use (offline)")
    return Check("dataset", "missing", f"{recipe.eval.dataset} absent: {found.detail}")


def source_check(recipe: Recipe, *, dataset: Check) -> Check:
    from aip.cache import download_path

    uri = str(getattr(recipe.source, "uri", ""))
    if uri.startswith(("http://", "https://")):
        cached = download_path(uri)
        if cached.is_file():
            return Check("source", "ready", f"{uri} cached ({cached.stat().st_size} bytes)")
        return Check("source", "download", f"{uri} not cached, needs the network on first use")
    if uri == "dataset:train":  # the labelled training items, labels unused: there when the dataset is
        return Check("source", dataset.state, f"the training items of {recipe.eval.dataset} (labels unused)")
    path = Path(uri).expanduser()
    if ":" in uri.split("/")[0] and not path.exists():  # skimage:NAME, synthetic:..., espeak:...
        return Check("source", "ready", f"{uri}, made by the {recipe.modality} modality")
    if path.is_file() and os.access(path, os.R_OK):
        return Check("source", "ready", f"{uri} readable ({path.stat().st_size} bytes)")
    return Check("source", "missing", f"{uri} is not a readable file")


def teacher_check(recipe: Recipe) -> Check:
    t = recipe.teacher
    if t.kind == "checkpoint":
        path = Path(t.checkpoint).expanduser()
        ok = path.is_file() and os.access(path, os.R_OK)
        return Check("teacher", "ready" if ok else "missing",
                     f"checkpoint {t.checkpoint} {'readable' if ok else 'is not a readable file'}")
    if t.kind != "train":
        where = "the Hugging Face Hub" if t.kind == "hub" else "its model library"
        return Check("teacher", "unchecked", f"{t.kind} {t.arch or ''} weights: from {where}'s cache, or downloaded "
                                             "on first use".replace("  ", " "))
    # the cache file's name starts with the dataset and the architecture (aip.teacher.cache_key); its hash also
    # covers the teacher section and the test split's files, which only reading the data would give: a check
    # must not read (or build) a dataset, so a cached teacher of the same dataset and architecture is reported
    from aip.cache import cache_dir

    prefix = f"{recipe.eval.dataset}-{t.arch.replace(':', '_').replace('/', '_')}-"  # as aip.teacher.cache_key names it
    cached = sorted(p.name for p in cache_dir("teachers").glob(f"{prefix}*") if p.suffix in (".safetensors", ".pt"))
    if cached:
        return Check("teacher", "ready", f"{t.arch} for {recipe.eval.dataset} cached ({cached[-1]}; trained again "
                                         "if this recipe's teacher section differs)")
    return Check("teacher", "build", f"{t.arch} not cached: trained here on first run ({t.fit.epochs} epochs on "
                                     f"the labelled {recipe.eval.dataset} train split)")


def device_check(device: str) -> Check:
    import torch

    from aip.hardware import resolve_device

    try:
        dev = resolve_device(device)
    except AipError as e:
        return Check("device", "missing", one_line(e))
    name = f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""
    return Check("device", "ready", f"{dev}{name}" + (", chosen by --device auto" if device == "auto" else ""))


def memory_check(recipe: Recipe, device: str) -> Check:
    from aip import footprint
    from aip.hardware import Policy, resolve_device
    from aip.modality import InputReader
    from aip.registry import load_modality

    try:
        dev = resolve_device(device)
    except AipError:
        return Check("memory", "unchecked", f"no device {device} to compare with")
    modality = load_modality(recipe.modality)
    shape = None
    if isinstance(modality, InputReader):
        try:
            shape = tuple(modality.input_spec(recipe)["shape"])
        except (AipError, KeyError, TypeError):
            shape = None
    amp = Policy.of(recipe, dev).amp
    try:
        found = footprint.estimate(recipe, modality=modality, num_classes=10, view_shape=shape, amp=amp)
    except AipError as e:  # a model that does not build: `aip check` names it before the preflight
        return Check("memory", "unchecked", f"the models do not build ({one_line(e)})")
    limit = footprint.memory_limit(dev)
    line = footprint.problem(recipe, found, limit, device=dev, modality=modality, num_classes=10, view_shape=shape,
                             amp=amp)
    if line:
        return Check("memory", "missing", line)
    of = f" of the {footprint.size(limit)} on {dev}" if limit is not None else f" ({dev}'s memory is not known)"
    known = found.student.activations is not None  # None: no view shape, or a forward that cannot run on meta
    acts = "" if known else " (weights and optimiser state; the activations are not known)"
    return Check("memory", "ready", f"the models need about {footprint.size(found.bytes)} to train{acts}{of}")


def preflight(recipe: Recipe, *, device: str = "auto") -> list[Check]:
    """The checks of the module docstring, in order, for an already validated ``recipe``."""
    dataset = dataset_check(recipe)
    return [dataset, source_check(recipe, dataset=dataset), teacher_check(recipe),
            device_check(device), memory_check(recipe, device)]
