"""Recipes: one TOML file per experiment, parsed into frozen, typed dataclasses.

A recipe names its modality and has the sections ``[source]``, ``[augment]`` (both defined by the modality),
``[teacher]``, ``[student]``, ``[loss]``, ``[train]`` and ``[eval]`` (defined here). ``--set section.key=value``
overrides are applied to the raw data before validation, so they are checked like the file itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

from aip.errors import RecipeError
from aip.registry import load_modality
from aip.schema import build, check, to_dict


@dataclass(frozen=True)
class TeacherFit:
    """How ``aip teacher`` trains a teacher when ``teacher.kind = "train"`` (cross-entropy on the labelled set)."""

    epochs: int = 3
    batch_size: int = 128
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 2e-3
    weight_decay: float = 5e-4
    schedule: Literal["constant", "cosine", "onecycle"] = "onecycle"
    label_smoothing: float = 0.0
    # a floor on optimiser steps: a small dataset gets more epochs (ceil(min_steps / batches per epoch)) so the
    # recipe's schedule also trains a usable teacher on a user's few hundred images; 0 = epochs alone decide
    min_steps: int = 0

    def __post_init__(self) -> None:
        check(self.epochs >= 1, "teacher.fit.epochs", "must be at least 1")
        check(self.min_steps >= 0, "teacher.fit.min_steps", "must be 0 (no floor) or more")
        check(self.batch_size >= 1, "teacher.fit.batch_size", "must be at least 1")
        check(self.lr > 0, "teacher.fit.lr", "must be positive")
        check(0 <= self.label_smoothing < 1, "teacher.fit.label_smoothing", "must be in [0, 1)")


@dataclass(frozen=True)
class TeacherConfig:
    """The frozen teacher that labels every view.

    ``kind``: ``pretrained`` (library weights by name: torchvision ``resnet18`` or ``timm:NAME``), ``hub``
    (``torch.hub.load(hub_repo, hub_entry, pretrained=True)``), ``checkpoint`` (``arch`` + a local state dict)
    or ``train`` (trained on the recipe's labelled dataset by ``aip teacher``, cached and reused).
    """

    kind: Literal["pretrained", "hub", "checkpoint", "train"]
    arch: str = ""
    weights: str = "DEFAULT"
    hub_repo: str = ""
    hub_entry: str = ""
    checkpoint: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: input normalisation; empty means the modality's default for this model and dataset
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    fit: TeacherFit = field(default_factory=TeacherFit)

    def __post_init__(self) -> None:
        if self.kind in ("pretrained", "checkpoint", "train"):
            check(bool(self.arch), "teacher.arch", f"is required when teacher.kind = {self.kind!r}")
        if self.kind == "hub":
            check(bool(self.hub_repo and self.hub_entry), "teacher.hub_repo",
                  "teacher.kind = 'hub' needs hub_repo (e.g. 'owner/repo:branch') and hub_entry")
        if self.kind == "checkpoint":
            check(bool(self.checkpoint), "teacher.checkpoint", "is required when teacher.kind = 'checkpoint'")
        check(len(self.mean) == len(self.std), "teacher.mean", "mean and std must have the same length")


@dataclass(frozen=True)
class StudentConfig:
    """The randomly initialised student (``arch`` from the modality's model registry)."""

    arch: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        check(len(self.mean) == len(self.std), "student.mean", "mean and std must have the same length")


@dataclass(frozen=True)
class LossConfig:
    """Knowledge distillation loss.

    ``kl``: KL(softmax(t/T) || softmax(s/T)), batch mean (the paper's code; no T^2 factor unless ``t2_scale``).
    ``argmax``: cross-entropy with the teacher's arg-max (the paper's "AM" ablation).
    """

    kind: Literal["kl", "argmax"] = "kl"
    temperature: float = 8.0
    t2_scale: bool = False

    def __post_init__(self) -> None:
        check(self.temperature > 0, "loss.temperature", "must be positive")


@dataclass(frozen=True)
class TrainConfig:
    """The distillation loop. One epoch is ``samples_per_epoch`` views (the paper: 50,000 patches for CIFAR).

    ``batch_size`` is per process and per micro-batch: one optimiser step sees the *effective batch*
    ``batch_size x grad_accum x processes`` (processes: ``torchrun --nproc-per-node``, 1 for a plain ``aip run``).
    ``lr`` is the rate for one process; ``lr_scaling`` says how it grows with the number of processes
    (``linear``: x N, ``sqrt``: x sqrt(N), ``none``: unchanged). An epoch always has ``samples_per_epoch`` views
    in all, so more processes make fewer, larger steps.
    ``view_pool`` > 1 turns on view selection (an aip extension, see :mod:`aip.select`) by the policy
    ``view_select``: ``balanced`` over the teacher's classes, max teacher ``entropy``, class-balanced views on the
    teacher's decision ``boundary`` between two classes, ``random``, a ``coverage`` of the teacher's probability
    simplex, or the student-aware ``learnability`` (teacher sure, student wrong) and ``adversarial`` (kept views
    moved to raise the student-teacher KL, then labelled by the teacher) (:mod:`aip.select`).
    """

    epochs: int = 10
    samples_per_epoch: int = 50_000
    batch_size: int = 256
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: Literal["constant", "cosine", "step", "onecycle"] = "cosine"
    warmup_epochs: float = 0.0
    milestones: list[float] = field(default_factory=list)
    gamma: float = 0.5
    grad_clip: float = 0.0
    #: > 1: draw view_pool x batch_size views and keep a teacher-class-balanced batch (aip.select)
    view_pool: int = 1
    view_select: Literal["balanced", "entropy", "boundary", "random", "coverage", "learnability",
                         "adversarial"] = "balanced"
    #: view_select = "adversarial": signed-gradient steps on the kept views, and their L-inf budget as a fraction
    #: of the batch's standard deviation (aip.select.adversarial_views)
    adversarial_steps: int = 2
    adversarial_eps: float = 0.05
    seed: int = 0
    amp: Literal["auto", "bf16", "off"] = "auto"
    #: "auto": channels-last for 4-D batches (images); "on": also channels_last_3d for 5-D ones (video)
    channels_last: Literal["auto", "on", "off"] = "auto"
    compile: bool = False
    #: on CUDA, replay the data path (sampler + augmenter) from a CUDA graph: "auto" when the modality marks
    #: both capturable, "off" never (aip.graphs)
    graph_data: Literal["auto", "off"] = "auto"
    log_every: int = 20
    #: micro-batches of ``batch_size`` whose gradients are summed into one optimiser step (for small GPUs)
    grad_accum: int = 1
    lr_scaling: Literal["none", "linear", "sqrt"] = "none"
    #: extra trackers of the per-step scalars besides the run's steps.jsonl: "tensorboard" (aip.tracking)
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check(self.epochs >= 1, "train.epochs", "must be at least 1")
        check(all(b in ("tensorboard",) for b in self.log), "train.log",
              "lists extra trackers; allowed: 'tensorboard' (e.g. train.log = ['tensorboard'])")
        check(self.grad_accum >= 1, "train.grad_accum", "must be at least 1 (1 disables accumulation)")
        check(self.samples_per_epoch >= self.batch_size, "train.samples_per_epoch",
              "must be at least train.batch_size")
        check(self.batch_size >= 2, "train.batch_size", "must be at least 2 (CutMix mixes pairs)")
        check(self.lr > 0, "train.lr", "must be positive")
        check(self.weight_decay >= 0, "train.weight_decay", "must be >= 0")
        check(0 <= self.warmup_epochs < self.epochs, "train.warmup_epochs", "must be in [0, train.epochs)")
        check(all(0 < m < self.epochs for m in self.milestones), "train.milestones",
              "must be epochs strictly between 0 and train.epochs")
        check(self.schedule != "step" or bool(self.milestones), "train.milestones",
              "train.schedule = 'step' needs at least one milestone")
        check(self.grad_clip >= 0, "train.grad_clip", "must be >= 0 (0 disables clipping)")
        check(self.log_every >= 1, "train.log_every", "must be at least 1")
        check(self.view_pool >= 1, "train.view_pool", "must be at least 1 (1 disables view selection)")
        check(self.adversarial_steps >= 0, "train.adversarial_steps", "must be >= 0 (0 leaves the views unmoved)")
        check(self.adversarial_eps >= 0, "train.adversarial_eps", "must be >= 0 (0 leaves the views unmoved)")

    def effective_batch(self, world: int = 1) -> int:
        """Views per optimiser step over all ``world`` processes."""
        return self.batch_size * self.grad_accum * world

    def steps_per_epoch_at(self, world: int = 1) -> int:
        return max(1, -(-self.samples_per_epoch // self.effective_batch(world)))

    def lr_at(self, world: int = 1) -> float:
        """The learning rate for ``world`` processes under ``lr_scaling``."""
        factor = {"none": 1.0, "linear": float(world), "sqrt": world**0.5}[self.lr_scaling]
        return self.lr * factor

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch of one process."""
        return self.steps_per_epoch_at(1)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


@dataclass(frozen=True)
class EvalConfig:
    """The real labelled dataset the student is evaluated on (its train split trains ``teacher.kind = "train"``).

    ``bn_recalibrate`` re-estimates BatchNorm statistics on *unlabelled test images* before evaluating: a
    test-time adaptation that looks at test data, so it is off by default and reported as such.
    """

    dataset: str
    root: str = ""
    download: bool = True
    batch_size: int = 256
    every_epochs: int = 1
    #: > 0: also evaluate at this many log-spaced steps per decade (3: steps 1, 2, 5, 10, 22, 46, 100, ...), the grid
    #: of the views-to-accuracy curve that `aip report` draws (aip.curve)
    log_grid: int = 0
    workers: int = 0
    limit: int = 0
    bn_recalibrate: bool = False

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, "eval.batch_size", "must be at least 1")
        check(self.every_epochs >= 1, "eval.every_epochs", "must be at least 1")
        check(0 <= self.log_grid <= 20, "eval.log_grid", "must be 0 (off) to 20 evaluations per decade of steps")
        check(self.workers >= 0, "eval.workers", "must be >= 0")
        check(self.limit >= 0, "eval.limit", "must be >= 0 (0 evaluates the whole split)")


@dataclass(frozen=True)
class Recipe:
    """A whole experiment. ``source`` and ``augment`` are the modality's own dataclasses."""

    modality: str
    source: Any
    augment: Any
    teacher: TeacherConfig
    student: StudentConfig
    eval: EvalConfig
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = "run"
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def fingerprint(self, *sections: str) -> str:
        """Short hash of the given sections (all if none): identifies a run or a cached teacher."""
        data = self.to_dict()
        if sections:
            data = {k: data.get(k) for k in sections}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


_CORE_SECTIONS = {
    "teacher": TeacherConfig, "student": StudentConfig, "loss": LossConfig, "train": TrainConfig,
    "eval": EvalConfig,
}
_TOP_KEYS = {"modality", "name", "description", "source", "augment", *_CORE_SECTIONS}


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=3"`` -> ``(["train", "epochs"], 3)``; the value is read as TOML, else as a string."""
    if "=" not in text:
        raise RecipeError(f"override {text!r} must look like section.key=value (e.g. train.epochs=3)")
    key, raw = text.split("=", 1)
    path = [p.strip() for p in key.strip().split(".")]
    if not all(path):
        raise RecipeError(f"override {text!r} has an empty key part")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
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
        raise RecipeError(f"recipe file {p} does not exist (check the path; shipped recipes are in recipes/)")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8-sig"))  # -sig: skip a byte-order mark (some editors)
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"recipe file {p} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise RecipeError(f"recipe file {p} is not a UTF-8 text file") from None


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
    for section, cls in _CORE_SECTIONS.items():
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
