"""What a recipe is: the frozen, typed dataclasses of one experiment, each field documented where it is declared.

A :class:`Recipe` names its modality and holds the sections ``[source]`` and ``[augment]`` (the modality's own
dataclasses, the type parameters ``S`` and ``A``), ``[teacher]``, ``[student]``, ``[loss]``, ``[train]`` and
``[eval]`` (defined here). Every ``__post_init__`` check names the key it rejects. How a recipe is *read*
(TOML, ``--set`` overrides, the plugin's sections) is :mod:`aip.recipe`; this module reads nothing, so the
modality Protocol (:mod:`aip.modality`) can name these types without an import circle.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import tomli_w

from aip.schema import check, to_dict

#: the modality's ``[source]`` dataclass
S = TypeVar("S")
#: the modality's ``[augment]`` dataclass
A = TypeVar("A")


@dataclass(frozen=True)
class TeacherFit:
    """How ``aip teacher`` trains a teacher when ``teacher.kind = "train"`` (cross-entropy on the labelled set)."""

    #: passes over the labelled train split
    epochs: int = 3
    #: labelled examples per optimiser step
    batch_size: int = 128
    #: the teacher's optimiser
    optimizer: Literal["adamw", "sgd"] = "adamw"
    #: the learning rate (the peak of ``onecycle``)
    lr: float = 2e-3
    #: the optimiser's weight decay
    weight_decay: float = 5e-4
    #: the learning-rate schedule over the teacher's steps
    schedule: Literal["constant", "cosine", "onecycle"] = "onecycle"
    #: cross-entropy label smoothing, in [0, 1)
    label_smoothing: float = 0.0
    #: a floor on optimiser steps: a small dataset gets more epochs (ceil(min_steps / batches per epoch)) so the
    #: recipe's schedule also trains a usable teacher on a user's few hundred images; 0 = epochs alone decide
    min_steps: int = 0

    def __post_init__(self) -> None:
        check(self.epochs >= 1, "teacher.fit.epochs", "must be at least 1")
        check(self.min_steps >= 0, "teacher.fit.min_steps", "must be 0 (no floor) or more")
        check(self.batch_size >= 1, "teacher.fit.batch_size", "must be at least 1")
        check(self.lr > 0, "teacher.fit.lr", "must be positive")
        check(0 <= self.label_smoothing < 1, "teacher.fit.label_smoothing", "must be in [0, 1)")


@dataclass(frozen=True)
class TeacherConfig:
    """The frozen teacher that labels every view."""

    #: ``pretrained`` (library weights by name: torchvision ``resnet18`` or ``timm:NAME``), ``hub``
    #: (``torch.hub.load(hub_repo, hub_entry, pretrained=True)``), ``checkpoint`` (``arch`` + a local state dict)
    #: or ``train`` (trained on the recipe's labelled dataset by ``aip teacher``, cached and reused)
    kind: Literal["pretrained", "hub", "checkpoint", "train"]
    #: the model's name in the modality's registry (``aip list``); required unless ``kind = "hub"``
    arch: str = ""
    #: the library's weight name for ``kind = "pretrained"``
    weights: str = "DEFAULT"
    #: ``kind = "hub"``: the ``owner/repo:branch`` and the entry point ``torch.hub.load`` calls
    hub_repo: str = ""
    #: ``kind = "hub"``: the entry point in ``hub_repo`` that ``torch.hub.load`` calls
    hub_entry: str = ""
    #: ``kind = "checkpoint"``: a local state dict for ``arch``
    checkpoint: str = ""
    #: extra keyword arguments of the model builder
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: input normalisation; empty means the modality's default for this model and dataset
    mean: list[float] = field(default_factory=list)
    #: the normalisation's standard deviations, as many as ``mean``
    std: list[float] = field(default_factory=list)
    #: how ``kind = "train"`` trains it
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
    """The randomly initialised student."""

    #: the model's name in the modality's registry (``aip list``)
    arch: str
    #: extra keyword arguments of the model builder
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: input normalisation; empty means the modality's default for this model and dataset
    mean: list[float] = field(default_factory=list)
    #: the normalisation's standard deviations, as many as ``mean``
    std: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        check(len(self.mean) == len(self.std), "student.mean", "mean and std must have the same length")


@dataclass(frozen=True)
class LossConfig:
    """Knowledge distillation loss."""

    #: ``kl``: KL(softmax(t/T) || softmax(s/T)), batch mean (the paper's code); ``argmax``: cross-entropy with
    #: the teacher's arg-max (the paper's "AM" ablation)
    kind: Literal["kl", "argmax"] = "kl"
    #: T of ``kl``
    temperature: float = 8.0
    #: multiply ``kl`` by T^2 (the paper's code does not)
    t2_scale: bool = False

    def __post_init__(self) -> None:
        check(self.temperature > 0, "loss.temperature", "must be positive")


@dataclass(frozen=True)
class TrainConfig:
    """The distillation loop. One epoch is ``samples_per_epoch`` views (the paper: 50,000 patches for CIFAR).

    One optimiser step sees the *effective batch* ``batch_size x grad_accum x processes`` (processes:
    ``torchrun --nproc-per-node``, 1 for a plain ``aip run``). An epoch always has ``samples_per_epoch`` views in
    all, so more processes make fewer, larger steps.
    """

    #: passes of ``samples_per_epoch`` views
    epochs: int = 10
    #: views per epoch, over all processes
    samples_per_epoch: int = 50_000
    #: views per process and per micro-batch
    batch_size: int = 256
    #: the student's optimiser
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    #: the rate for one process (``lr_scaling`` says how it grows with the number of processes)
    lr: float = 1e-3
    #: the optimiser's weight decay
    weight_decay: float = 0.0
    #: SGD's momentum
    momentum: float = 0.9
    #: the learning-rate schedule over all steps of the run (``step``: at ``milestones``)
    schedule: Literal["constant", "cosine", "step", "onecycle"] = "cosine"
    #: linear warm-up, in epochs, in [0, epochs)
    warmup_epochs: float = 0.0
    #: ``schedule = "step"``: the epochs (strictly between 0 and ``epochs``) where the rate is multiplied by gamma
    milestones: list[float] = field(default_factory=list)
    #: ``schedule = "step"``: the factor the rate is multiplied by at each milestone
    gamma: float = 0.5
    #: gradient-norm clipping; 0 disables it
    grad_clip: float = 0.0
    #: > 1: draw view_pool x batch_size views and keep batch_size of them by the policy ``view_select`` (view
    #: selection, an aip extension, :mod:`aip.select`)
    view_pool: int = 1
    #: ``balanced`` over the teacher's classes, max teacher ``entropy``, class-balanced views on the teacher's
    #: decision ``boundary`` between two classes, ``random``, a ``coverage`` of the teacher's probability simplex,
    #: or the student-aware ``learnability`` (teacher sure, student wrong) and ``adversarial`` (kept views moved to
    #: raise the student-teacher KL, then labelled by the teacher)
    view_select: Literal["balanced", "entropy", "boundary", "random", "coverage", "learnability",
                         "adversarial"] = "balanced"
    #: view_select = "adversarial": signed-gradient steps on the kept views (aip.select.adversarial_views)
    adversarial_steps: int = 2
    #: view_select = "adversarial": the steps' L-inf budget, as a fraction of the batch's standard deviation
    adversarial_eps: float = 0.05
    #: seeds the student's initial weights, the views drawn (each process adds its rank) and a trained teacher
    seed: int = 0
    #: mixed precision: "auto" (bf16 where the device runs it fast), "bf16" or "off"
    amp: Literal["auto", "bf16", "off"] = "auto"
    #: "auto": channels-last for 4-D batches (images); "on": also channels_last_3d for 5-D ones (video)
    channels_last: Literal["auto", "on", "off"] = "auto"
    #: ``torch.compile`` the student
    compile: bool = False
    #: on CUDA, replay the data path (sampler + augmenter) from a CUDA graph: "auto" when the modality marks
    #: both capturable, "off" never (aip.graphs)
    graph_data: Literal["auto", "off"] = "auto"
    #: steps between two rows of steps.jsonl
    log_every: int = 20
    #: micro-batches of ``batch_size`` whose gradients are summed into one optimiser step (for small GPUs)
    grad_accum: int = 1
    #: how ``lr`` grows with N processes: ``linear`` x N, ``sqrt`` x sqrt(N), ``none`` unchanged
    lr_scaling: Literal["none", "linear", "sqrt"] = "none"
    #: experiment trackers besides the run's steps.jsonl, any of "tensorboard", "wandb", "mlflow", "csv" (aip.trackers)
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check(self.epochs >= 1, "train.epochs", "must be at least 1")
        check(all(b in ("tensorboard", "wandb", "mlflow", "csv") for b in self.log), "train.log",
              "lists trackers; allowed: 'tensorboard', 'wandb', 'mlflow', 'csv' (e.g. train.log = ['tensorboard'])")
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
    """The real labelled dataset the student is evaluated on (its train split trains ``teacher.kind = "train"``)."""

    #: the dataset's name in the modality's registry (``aip list``)
    dataset: str
    #: where it lives; empty: the dataset cache (``$AIP_CACHE/datasets``)
    root: str = ""
    #: fetch it when missing (where the dataset has a downloader)
    download: bool = True
    #: test items per evaluation batch
    batch_size: int = 256
    #: evaluate after every this many epochs (and after the last)
    every_epochs: int = 1
    #: > 0: also evaluate at this many log-spaced steps per decade (3: steps 1, 2, 5, 10, 22, 46, 100, ...), the grid
    #: of the views-to-accuracy curve that `aip report` draws (aip.curve)
    log_grid: int = 0
    #: DataLoader workers of the test split
    workers: int = 0
    #: > 0: evaluate on the first this many test items only
    limit: int = 0
    #: re-estimate BatchNorm statistics on *unlabelled test images* before evaluating: a test-time adaptation
    #: that looks at test data, so it is off by default and reported as such
    bn_recalibrate: bool = False

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, "eval.batch_size", "must be at least 1")
        check(self.every_epochs >= 1, "eval.every_epochs", "must be at least 1")
        check(0 <= self.log_grid <= 20, "eval.log_grid", "must be 0 (off) to 20 evaluations per decade of steps")
        check(self.workers >= 0, "eval.workers", "must be >= 0")
        check(self.limit >= 0, "eval.limit", "must be >= 0 (0 evaluates the whole split)")


@dataclass(frozen=True)
class Recipe(Generic[S, A]):
    """A whole experiment, typed by its modality's sections: ``Recipe[ImageSourceConfig, ImageAugmentConfig]``."""

    #: the entry-point name of the modality (``aip list``)
    modality: str
    #: the modality's ``[source]`` section: the single datum and how views are drawn from it
    source: S
    #: the modality's ``[augment]`` section: the training-time augmentation
    augment: A
    teacher: TeacherConfig
    student: StudentConfig
    eval: EvalConfig
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    #: the run's name (default: the recipe file's stem)
    name: str = "run"
    #: free text about the experiment
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


#: the core's sections of a recipe, by key
SECTIONS: dict[str, type] = {
    "teacher": TeacherConfig, "student": StudentConfig, "loss": LossConfig, "train": TrainConfig,
    "eval": EvalConfig,
}
