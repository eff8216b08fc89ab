"""What the CLI commands do, as library functions: run a recipe, train its teacher, evaluate, preview.

``run()`` takes the modality, teacher, student, sampler, augmenter and evaluator from one
:class:`aip.parts.Parts`, hands them to :func:`aip.trainer.fit`, and writes ``metrics.json`` (the contract other
tools rely on, :func:`aip.parts.metrics_of`), the resolved recipe and a plot of the curves into the run directory
(its files are named by :class:`aip.rundir.RunDir`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch

from aip import checkpoint, distributed, files, footprint, rundir
from aip.errors import AipError, UsageError
from aip.hardware import check_step_memory
from aip.parts import Parts, Timings, metrics_of, teacher_accuracy
from aip.plot import plot_curves
from aip.recipe import Recipe
from aip.rundir import RunDir, owned_outputs
from aip.student import class_names
from aip.teacher import check_outputs, partial_path, teacher_path
from aip.tracking import Tracker, read_steps
from aip.trainer import FitResult, fit

__all__ = ["Parts", "build_parts", "default_run_dir", "describe_models", "evaluate_checkpoint", "inspect_student",
           "preview", "run", "teacher_accuracy", "train_teacher"]


def default_run_dir(recipe_path: str | Path, overrides: list[str] | None = None) -> Path:
    """``runs/NAME``, or ``runs/NAME-HASH`` when ``--set`` overrides change it, so re-running resumes."""
    name = Path(recipe_path).stem
    if overrides:
        name += "-" + hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8]
    return Path("runs") / name




def build_parts(recipe: Recipe, *, device: torch.device) -> Parts:
    """The parts of a run of ``recipe`` on ``device`` (:class:`aip.parts.Parts`; each built on first use)."""
    return Parts(recipe, device=device)


def run(recipe: Recipe, *, out: Path, device: torch.device, stop_after_epochs: int | None = None,
        force: bool = False) -> dict[str, Any]:
    """Distil the recipe's teacher into its student and evaluate it; returns what ``metrics.json`` holds.

    ``out`` is claimed first (:mod:`aip.rundir`): locked against other runs, refused if it holds anything but
    a run of this recipe (unless ``force``), and removed again if the run fails before its first checkpoint.
    Under ``torchrun`` every rank calls this (see :mod:`aip.distributed`); rank 0 alone claims and writes ``out``.
    """
    with ExitStack() as stack:
        problem, error = None, None
        if distributed.current().is_main:
            try:
                stack.enter_context(rundir.claimed(out, fingerprint=rundir.fingerprint(recipe), force=force))
            except AipError as e:
                problem, error = str(e), e
        problem = distributed.agree(problem)  # every rank stops when rank 0 cannot claim the folder
        if problem:
            raise error if error is not None else AipError(problem)
        return _distil(recipe, run_dir=out, device=device, stop_after_epochs=stop_after_epochs)


def _distil(recipe: Recipe, *, run_dir: Path, device: torch.device, stop_after_epochs: int | None) -> dict[str, Any]:
    started = time.perf_counter()
    parts, times, teacher_acc = _prepare(recipe, run_dir=RunDir(run_dir), device=device)
    # the trackers stay open past fit() for the final metrics, the hyper-parameters and the confusion matrix
    with Tracker.of(recipe, run_dir, enabled=distributed.current().is_main) as tracker:
        result = fit(recipe=recipe, student=parts.student, teacher=parts.teacher, sampler=parts.sampler,
                     augmenter=parts.augmenter, evaluate=lambda m: parts.evaluator.evaluate(m, all_views=False),
                     run_dir=run_dir, device=device, classes=parts.classes, stop_after_epochs=stop_after_epochs,
                     tracker=tracker)
        return _finish(parts, result, run_dir=RunDir(run_dir), teacher_acc=teacher_acc, times=times,
                       started=started, tracker=tracker)


def _prepare(recipe: Recipe, *, run_dir: RunDir, device: torch.device) -> tuple[Parts, Timings, dict[str, float]]:
    """Build and check the parts in the order that fails fastest: the source is decoded and augmented before
    the teacher is loaded (or trained, which takes minutes); then the models' shapes and the step's memory."""
    started = time.perf_counter()
    torch.manual_seed(recipe.train.seed)  # the student's initial weights depend on the recipe's seed only
    parts = Parts(recipe, device=device)
    first = parts.first_views  # decodes the source (the global RNG is left as it was)
    footprint.check_parts(parts, first)  # the models fit in memory, before either is allocated
    teacher, student = parts.teacher, parts.student
    times = Timings(setup=time.perf_counter() - started)  # data, teacher (trained here on first use), models
    check_outputs(teacher, student, first, num_classes=parts.test.num_classes)
    check_step_memory(recipe, first, device)
    if distributed.current().is_main:
        files.write_text(recipe.to_toml(), run_dir.recipe)
    tick = time.perf_counter()
    teacher_acc = parts.teacher_accuracy()
    times.teacher_eval = time.perf_counter() - tick
    return parts, times, teacher_acc


def _finish(parts: Parts, result: FitResult, *, run_dir: RunDir, teacher_acc: dict[str, float], times: Timings,
            started: float, tracker: Tracker) -> dict[str, Any]:
    """The final evaluation (every view of each item), ``metrics.json``, the confusion matrix and the curves."""
    recipe, final, views = parts.recipe, result.final, parts.test.views
    tick = time.perf_counter()
    if views > 1 and final:  # the full protocol: softmax averaged over every view of each test item
        final = {**parts.evaluator.evaluate(parts.student, all_views=True), "views": views}
    times.final_eval = time.perf_counter() - tick
    times.wall = time.perf_counter() - started
    metrics = metrics_of(parts, result, final=final, teacher=teacher_acc, timings=times, run_dir=run_dir.path)
    main = distributed.current().is_main
    if recipe.eval.bn_recalibrate and final:
        # test-time adaptation: looks at unlabelled TEST inputs; reported apart from the method's number
        tuned = parts.evaluator.recalibrated(parts.student)
        metrics["student_bn_recalibrated_on_test_inputs"] = parts.evaluator.evaluate(tuned, all_views=True)
    if final and main:  # per-class accuracy, confusion matrix, teacher agreement (aip.inspect)
        metrics.update(_inspect(parts, parts.student, parts.teacher, png=run_dir.confusion))
    if result.history and main:
        files.write_text(json.dumps(metrics, indent=2), run_dir.metrics)
        plot_curves(result.history, run_dir.curves, title=recipe.name, teacher_top1=teacher_acc["top1"],
                    steps=read_steps(run_dir.steps), views_per_step=metrics.get("effective_batch"),
                    chance=100 / parts.test.num_classes)
    if final and metrics.get("finished"):
        tracker.finish(final, step=result.step, image=run_dir.confusion)
    return metrics


def describe_models(recipe: Recipe) -> dict[str, int]:
    """Build the recipe's student (and teacher, unless it comes from torch.hub) on the meta device, so an
    unknown architecture or a bad ``kwargs`` key fails at ``aip check`` time; returns their parameter counts
    (with a 10-class head: the real class count needs the dataset)."""
    parts = Parts(recipe, device=torch.device("meta"), num_classes=10)
    specs = {"student": recipe.student}
    if recipe.teacher.kind != "hub":
        specs["teacher"] = recipe.teacher
    counts = {}
    with torch.device("meta"):  # no memory, no weights downloaded
        for role, spec in specs.items():
            model = parts.model(spec)
            counts[f"{role} {spec.arch}"] = sum(p.numel() for p in model.parameters())
    return counts


def train_teacher(recipe: Recipe, *, device: torch.device, force: bool = False) -> dict[str, Any]:
    """Train (or find cached) the recipe's ``teacher.kind = "train"`` teacher; returns its test accuracy."""
    if recipe.teacher.kind != "train":
        raise UsageError(f"teacher.kind is {recipe.teacher.kind!r}; `aip teacher` trains only teacher.kind = 'train'")
    parts = Parts(recipe, device=device)
    footprint.check_parts(parts, phases=("teacher",))  # the teacher fits in memory, before it is built
    path = teacher_path(recipe, parts.test)
    if force:
        path.unlink(missing_ok=True)
        path.with_suffix(".pt").unlink(missing_ok=True)  # the cache of older versions
        partial_path(path).unlink(missing_ok=True)  # an interrupted training: --force trains from the start
    acc = parts.teacher_accuracy()
    return {"path": str(path), "top1": acc["top1"], "top5": acc["top5"], "num_classes": parts.test.num_classes}


def inspect_student(recipe: Recipe, student: torch.nn.Module, teacher: torch.nn.Module | None, test: Any, *,
                    out: Path, device: torch.device) -> dict[str, Any]:
    """The keys :mod:`aip.inspect` adds to ``metrics.json`` (and ``classes``); draws ``out/confusion.png``."""
    parts = Parts(recipe, device=device)
    parts.test = test
    return _inspect(parts, student, teacher, png=RunDir(out).confusion)


def _inspect(parts: Parts, student: torch.nn.Module, teacher: torch.nn.Module | None, *,
             png: Path) -> dict[str, Any]:
    classes = class_names(parts.test.num_classes, parts.classes)
    return {"classes": classes, **parts.evaluator.inspect(student, teacher, classes=classes, png=png)}


#: the keys ``aip eval`` adds to (or replaces in) the ``metrics.json`` beside a checkpoint
EVAL_KEYS = ("classes", "per_class", "agreement", "confusion_png")


def evaluate_checkpoint(recipe: Recipe, path: Path, *, device: torch.device) -> dict[str, Any]:
    """Accuracy of a student checkpoint (``best.pt`` or ``last.pt`` of a run) on the recipe's test split.

    Also writes the :mod:`aip.inspect` report (per-class accuracy, confusion matrix, agreement with the
    recipe's teacher when it is available without training) into ``metrics.json`` beside the checkpoint; a
    ``metrics.json`` or ``confusion.png`` there that aip did not write is refused before any work."""
    folder = RunDir(path.parent)
    metrics = _own_metrics(folder)
    parts = Parts(recipe, device=device)
    footprint.check_parts(parts, phases=("student",))  # the student fits in memory, before it is built
    student = parts.model(recipe.student)
    state = checkpoint.load(path)
    checkpoint.check_finite(checkpoint.state_dict_in(state), what=f"checkpoint {path}")
    checkpoint.load_state(student, checkpoint.state_dict_in(state), what=f"checkpoint {path}",
                          fix=f"pass the recipe the run used (student.arch is {recipe.student.arch!r} here)")
    student = student.to(device)
    acc: dict[str, Any] = parts.evaluator.evaluate(student)
    try:
        teacher = parts.cached_teacher()
    except AipError as e:  # no cached teacher or no network: report the student alone
        print(f"warning: no teacher-student agreement ({e})", file=sys.stderr)
        teacher = None
    acc.update(_inspect(parts, student, teacher, png=folder.confusion))
    metrics.update({k: acc[k] for k in EVAL_KEYS if k in acc})
    files.write_text(json.dumps(metrics, indent=2), folder.metrics)
    return acc


def _own_metrics(folder: RunDir) -> dict[str, Any]:
    """The ``metrics.json`` of ``folder`` if aip wrote it (``{}`` if there is none); a file of another kind
    there, or a ``confusion.png`` beside no metrics of aip's, is refused with one line (it would be replaced)."""
    path = folder.metrics
    fix = "move it away, or copy the checkpoint into a folder of its own and evaluate it there"
    if not os.path.lexists(path):
        for figure in (folder.confusion, folder.path / RunDir.CONFUSION_PDF):  # the PNG and its PDF
            if os.path.lexists(figure):
                raise UsageError(f"{figure} is there but no metrics.json of aip's: `aip eval` would replace it; {fix}")
        return {}
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        metrics = None
    if not isinstance(metrics, dict) or not ("recipe" in metrics or "per_class" in metrics):
        raise UsageError(f"{path} was not written by aip (not a run's metrics): `aip eval` would replace it; {fix}")
    return metrics


def preview(recipe: Recipe, *, out: Path, count: int = 64, device: torch.device) -> list[Path]:
    """Write what the student sees (raw views and augmented views) as images into ``out``; returns the files.

    The files of an earlier preview are replaced; a same-named file aip did not write is refused before any
    is written (:func:`aip.rundir.owned_outputs`)."""
    parts = Parts(recipe, device=device)
    with owned_outputs(out) as staging:
        torch.manual_seed(recipe.train.seed)
        views = parts.sampler.sample(count)
        written = parts.modality.preview(views, staging / "views.png")
        written += parts.modality.preview(parts.augmenter(views), staging / "augmented.png")
    return [out / p.name for p in written]
