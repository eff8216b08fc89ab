"""The parts of a run, assembled in one place from ``(recipe, device)``: what ``aip run`` and its siblings need.

:class:`Parts` builds, once each and only when first asked, the modality, the test split, the teacher (trained
and cached on first use, or random weights for ``aip bench``), the student, the source sampler and augmenter,
the device policy, the data path (:func:`aip.trainer.data_path`) and an :class:`~aip.evaluate.Evaluator` of the
test split. ``aip run``, ``aip bench``, ``aip teacher``, ``aip eval``, ``aip preview``, ``aip source-stats`` and
``aip visualize`` all take what they need from one, so a command that needs no sampler (``eval``) or no real
teacher (``bench``) pays for neither, and ``bench`` times exactly the models and data ``run`` trains with.
:func:`metrics_of` turns the parts and a finished fit into what ``metrics.json`` holds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aip import checkpoint, distributed, graphs
from aip.cache import cache_dir
from aip.evaluate import Evaluator
from aip.hardware import Policy
from aip.modality import Augmenter, LabelledData, Modality, SourceSampler
from aip.recipe import Recipe, StudentConfig, TeacherConfig
from aip.registry import load_modality
from aip.teacher import FrozenTeacher, build_model, load_teacher, teacher_path
from aip.teacher import cache_key as teacher_cache_key


class Parts:
    """What a run of ``recipe`` on ``device`` needs; each part is built on first use and then kept.

    ``modality`` may be given when the caller already has it (a loaded student carries its own);
    ``num_classes`` fixes the class count without reading the test split (``aip bench --num-classes``).
    Under ``torchrun`` rank 0 reads the dataset and trains the teacher first, the other ranks then reuse them.
    """

    def __init__(self, recipe: Recipe, *, device: torch.device, modality: Modality | None = None,
                 num_classes: int = 0) -> None:
        self.recipe, self.device = recipe, device
        if modality is not None:
            self.modality = modality
        self._num_classes = num_classes

    @cached_property
    def modality(self) -> Modality:
        return load_modality(self.recipe.modality)

    @cached_property
    def policy(self) -> Policy:
        """The device policy (AMP, memory layout) every part runs under."""
        return Policy.of(self.recipe, self.device)

    @cached_property
    def test(self) -> LabelledData:
        """The labelled test split (``eval.dataset``), downloaded or generated on first use."""
        with distributed.main_first():  # rank 0 downloads the dataset; the others reuse it
            return self.modality.data(self.recipe, split="test", train=False)

    @property
    def num_classes(self) -> int:
        return self._num_classes or self.test.num_classes

    @property
    def classes(self) -> list[str]:
        return list(self.test.classes)

    @cached_property
    def teacher(self) -> FrozenTeacher:
        """The recipe's teacher, frozen, on the device; a ``teacher.kind = "train"`` teacher is trained (and
        cached) here on first use.

        The global RNG is left as it was: training a teacher draws thousands of numbers and loading a cached one
        draws its random initial weights, so without the fork the student's initial weights (built after the
        teacher) would differ between a first run and every later one of the same recipe and seed."""
        devices = [self.device] if self.device.type == "cuda" else []
        with distributed.main_first(), torch.random.fork_rng(devices=devices):
            return load_teacher(self.recipe, self.modality, device=self.device, data=self.test,
                                evaluator=self.evaluator)

    def cached_teacher(self) -> FrozenTeacher:
        """The teacher as far as it is available without training (raises :class:`AipError` otherwise)."""
        if "teacher" not in self.__dict__:
            return load_teacher(self.recipe, self.modality, device=self.device, data=self.test,
                                train_if_missing=False)
        return self.teacher

    def random_teacher(self, notes: list[str] | None = None) -> FrozenTeacher:
        """The teacher's architecture with random weights, on the device (what ``aip bench`` times: speed does
        not depend on the weights). A torch.hub teacher needs a download: the student's architecture stands in,
        and ``notes`` says so."""
        spec: TeacherConfig | StudentConfig = self.recipe.teacher
        if self.recipe.teacher.kind == "hub":
            if notes is not None:
                notes.append("teacher.kind = 'hub': timed the student architecture as the teacher (hub models "
                             "need a download)")
            spec = self.recipe.student
        return FrozenTeacher(self.model(spec)).to(self.device)

    def model(self, spec: TeacherConfig | StudentConfig) -> nn.Module:
        """A freshly initialised ``spec.arch`` (the teacher or student section) with the run's class count."""
        return build_model(self.modality, self.recipe, spec, num_classes=self.num_classes, pretrained=False)

    @cached_property
    def student(self) -> nn.Module:
        """The student, freshly initialised (from the global RNG: seed it first), on the device."""
        return self.model(self.recipe.student).to(self.device)

    @cached_property
    def sampler(self) -> SourceSampler:
        """Raw views of the single source datum (decoding the source: a bad one fails here, before any
        teacher is trained)."""
        return self.modality.sampler(self.recipe, device=self.device)

    @cached_property
    def augmenter(self) -> Augmenter:
        return self.modality.augmenter(self.recipe, device=self.device)

    @cached_property
    def first_views(self) -> torch.Tensor:
        """Two augmented views, drawn with the global RNG left as it was (so building the parts in any order
        gives the same run): the batch the shape and memory checks look at."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            return self.augmenter(self.sampler.sample(2))

    def data_path(self) -> graphs.GraphedData:
        """One training batch per call (:func:`aip.trainer.data_path` of this sampler and augmenter)."""
        from aip.trainer import data_path

        return data_path(self.recipe, self.sampler, self.augmenter, policy=self.policy)

    @cached_property
    def evaluator(self) -> Evaluator:
        """The test split batched as ``recipe.eval`` says, with the policy's AMP flag."""
        return Evaluator(self.recipe, self.test, device=self.device)

    def teacher_accuracy(self) -> dict[str, float]:
        """:func:`teacher_accuracy` of :attr:`teacher`."""
        return teacher_accuracy(self.recipe, self.teacher, self.test, device=self.device, evaluator=self.evaluator)


def teacher_accuracy(recipe: Recipe, teacher: nn.Module, test: LabelledData, *, device: torch.device,
                     evaluator: Evaluator | None = None) -> dict[str, float]:
    """Teacher accuracy on the test split, cached per teacher and dataset (it never changes).

    The key names the test split's files (a rebuilt set is a new set) and, for a trained teacher, its cached
    weights file as written (a teacher trained again, after ``--force`` or a deleted cache, is a new teacher)."""
    trained = teacher_path(recipe, test) if recipe.teacher.kind == "train" else None
    weights = [trained.stat().st_size, trained.stat().st_mtime_ns] if trained and trained.is_file() else []
    key = hashlib.sha256(json.dumps({"m": recipe.modality, "t": recipe.to_dict()["teacher"],
                                     "d": recipe.eval.dataset, "root": recipe.eval.root, "n": len(test.dataset),
                                     "limit": recipe.eval.limit, "shape": list(test.dataset[0][0].shape),
                                     "files": teacher_cache_key(recipe, test), "weights": weights},
                                    sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir("teachers") / f"accuracy-{key}.json"
    cached = distributed.agree(_cached_accuracy(path))
    if cached is not None:
        return cached
    evaluator = evaluator or Evaluator(recipe, test, device=device)
    acc = evaluator.evaluate(teacher, desc="teacher eval")
    if distributed.current().is_main:
        checkpoint.write_text_atomic(json.dumps(acc), path)
    return acc


def _cached_accuracy(path: Path) -> dict[str, float] | None:
    """A cached teacher accuracy, or None when there is none or it is damaged (then it is measured again)."""
    try:
        acc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(acc, dict) and all(isinstance(acc.get(k), int | float) and 0 <= acc[k] <= 100
                                       for k in ("top1", "top5"))
    return acc if ok else None


@dataclass
class Timings:
    """Wall seconds of one invocation of a run, by phase (see ``metrics.json``'s ``time``)."""

    setup: float = 0.0  # data, teacher (trained here on first use), models
    teacher_eval: float = 0.0
    final_eval: float = 0.0
    wall: float = 0.0


def metrics_of(parts: Parts, result: Any, *, final: dict[str, float], teacher: dict[str, float],
               timings: Timings, run_dir: Path) -> dict[str, Any]:
    """What ``metrics.json`` holds for a fit's ``result`` (:class:`aip.trainer.FitResult`) of these parts:
    ``final`` is the student's last evaluation (all views of each item), ``teacher`` the teacher's accuracy."""
    recipe, d = parts.recipe, distributed.current()
    views = parts.test.views
    metrics: dict[str, Any] = {
        "recipe": recipe.name,
        "dataset": recipe.eval.dataset,
        "source": parts.modality.describe_source(recipe),
        "teacher": {"top1": teacher["top1"], "top5": teacher["top5"]},
        "student": {"top1": final.get("top1", float("nan")), "top5": final.get("top5", float("nan"))},
        "student_best": result.best,
        "chance": 100.0 / parts.test.num_classes,
        "ratio": final.get("top1", float("nan")) / max(teacher["top1"], 1e-9),
        "steps": result.step,
        "finished": result.step >= recipe.train.epochs * recipe.train.steps_per_epoch_at(d.world),
        "eval_items": int(final.get("n", 0)),
        "eval_views": views,
        "train_seconds": round(result.seconds, 1),
        "wall_seconds": round(timings.wall, 1),
        # this invocation's wall time by phase (distillation and evaluations: over all invocations of the run)
        "time": {"setup_and_teacher_training": round(timings.setup, 1),
                 "teacher_evaluation": round(timings.teacher_eval, 1),
                 "distillation_steps": round(result.seconds, 1),
                 "evaluations": round(result.eval_seconds + timings.final_eval, 1)},
        "classes": parts.classes,
        "device": str(parts.device),
        "processes": d.world,
        "effective_batch": recipe.train.effective_batch(d.world),
        "lr": recipe.train.lr_at(d.world),
        "run_dir": str(run_dir),
    }
    if views > 1:  # what the training-time validation (middle view only) measured last, for comparison
        metrics["student_middle_view"] = {"top1": result.final.get("top1", float("nan")),
                                          "top5": result.final.get("top5", float("nan"))}
    return metrics

