"""What the CLI commands do, as library functions: run a recipe, train its teacher, evaluate, preview.

``run()`` resolves the modality, teacher, student, sampler and augmenter, hands them to
:func:`aip.trainer.fit`, and writes ``metrics.json`` (the contract other tools rely on), the resolved recipe
and a plot of the curves into the run directory.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from aip import checkpoint, distributed, files, rundir
from aip.cache import cache_dir
from aip.errors import AipError
from aip.evaluate import evaluate, loader, recalibrate_bn
from aip.hardware import Policy, check_step_memory
from aip.inspect import CONFUSION_PNG, inspect
from aip.modality import LabelledData, Modality
from aip.plot import plot_curves
from aip.recipe import Recipe
from aip.registry import load_modality
from aip.student import class_names
from aip.teacher import build_model, check_outputs, load_teacher, teacher_path
from aip.teacher import cache_key as teacher_cache_key
from aip.trainer import fit


def default_run_dir(recipe_path: str | Path, overrides: list[str] | None = None) -> Path:
    """``runs/NAME``, or ``runs/NAME-HASH`` when ``--set`` overrides change it, so re-running resumes."""
    name = Path(recipe_path).stem
    if overrides:
        name += "-" + hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8]
    return Path("runs") / name




@dataclass
class Parts:
    """Everything a run needs, built from a recipe."""

    modality: Modality
    test: LabelledData
    teacher: torch.nn.Module
    student: torch.nn.Module
    device: torch.device


def teacher_accuracy(recipe: Recipe, teacher: torch.nn.Module, test: LabelledData, *,
                     device: torch.device) -> dict[str, float]:
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
    acc = evaluate(teacher, loader(test, batch_size=recipe.eval.batch_size, workers=recipe.eval.workers,
                                   limit=recipe.eval.limit, shard=True), device=device,
                   amp=Policy.of(recipe, device).amp, desc="teacher eval", views=test.views, sharded=True)
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


def build_parts(recipe: Recipe, *, device: torch.device) -> Parts:
    modality = load_modality(recipe.modality)
    with distributed.main_first():  # rank 0 downloads the dataset and trains the teacher; the others reuse them
        test = modality.data(recipe, split="test", train=False)
        teacher = load_teacher(recipe, modality, device=device, data=test)
    student = build_model(modality, recipe, recipe.student, num_classes=test.num_classes, pretrained=False)
    return Parts(modality=modality, test=test, teacher=teacher, student=student.to(device), device=device)


def run(recipe: Recipe, *, out: Path, device: torch.device, stop_after_epochs: int | None = None,
        force: bool = False) -> dict[str, Any]:
    """Distil the recipe's teacher into its student and evaluate it; returns what ``metrics.json`` holds.

    ``out`` is claimed first (:mod:`aip.rundir`): locked against other runs, refused if it holds anything but
    a run of this recipe (unless ``force``), and removed again if the run fails before its first checkpoint.
    Under ``torchrun`` every rank calls this (see :mod:`aip.distributed`); rank 0 alone claims and writes ``out``.
    """
    with ExitStack() as stack:
        problem = None
        if distributed.current().is_main:
            try:
                stack.enter_context(rundir.claimed(out, fingerprint=rundir.fingerprint(recipe), force=force))
            except AipError as e:
                problem = str(e)
        problem = distributed.agree(problem)  # every rank stops when rank 0 cannot claim the folder
        if problem:
            raise AipError(problem)
        return _distil(recipe, run_dir=out, device=device, stop_after_epochs=stop_after_epochs)


def _distil(recipe: Recipe, *, run_dir: Path, device: torch.device, stop_after_epochs: int | None) -> dict[str, Any]:
    started = time.perf_counter()
    d = distributed.current()
    torch.manual_seed(recipe.train.seed)  # the student's initial weights depend on the recipe's seed only
    parts = build_parts(recipe, device=device)
    setup_seconds = time.perf_counter() - started  # data, teacher (trained here on first use), models
    sampler = parts.modality.sampler(recipe, device=device)
    augmenter = parts.modality.augmenter(recipe, device=device)
    first = augmenter(sampler.sample(2))
    check_outputs(parts.teacher, parts.student, first, num_classes=parts.test.num_classes)
    check_step_memory(recipe, first, device)
    if d.is_main:
        (run_dir / "recipe.toml").write_text(recipe.to_toml())
    tick = time.perf_counter()
    teacher_acc = teacher_accuracy(recipe, parts.teacher, parts.test, device=device)
    teacher_eval_seconds = time.perf_counter() - tick
    test_batches = loader(parts.test, batch_size=recipe.eval.batch_size, workers=recipe.eval.workers,
                          limit=recipe.eval.limit, shard=True)
    amp, views = Policy.of(recipe, device).amp, parts.test.views

    def evaluate_student(model: torch.nn.Module, *, all_views: bool = False) -> dict[str, float]:
        # during training, multi-view items are judged by their middle view alone (a cheaper validation)
        return evaluate(model, test_batches, device=device, amp=amp, desc="eval", views=views,
                        middle_only=not all_views, sharded=True)

    result = fit(recipe=recipe, student=parts.student, teacher=parts.teacher, sampler=sampler, augmenter=augmenter,
                 evaluate=evaluate_student, run_dir=run_dir, device=device, classes=list(parts.test.classes),
                 stop_after_epochs=stop_after_epochs)
    final = result.final
    tick = time.perf_counter()
    if views > 1 and final:  # the full protocol: softmax averaged over every view of each test item
        final = {**evaluate_student(parts.student, all_views=True), "views": views}
    final_eval_seconds = time.perf_counter() - tick
    wall = time.perf_counter() - started
    k = parts.test.num_classes
    metrics: dict[str, Any] = {
        "recipe": recipe.name,
        "dataset": recipe.eval.dataset,
        "source": parts.modality.describe_source(recipe),
        "teacher": {"top1": teacher_acc["top1"], "top5": teacher_acc["top5"]},
        "student": {"top1": final.get("top1", float("nan")), "top5": final.get("top5", float("nan"))},
        "student_best": result.best,
        "chance": 100.0 / k,
        "ratio": final.get("top1", float("nan")) / max(teacher_acc["top1"], 1e-9),
        "steps": result.step,
        "finished": result.step >= recipe.train.epochs * recipe.train.steps_per_epoch_at(d.world),
        "eval_items": int(final.get("n", 0)),
        "eval_views": views,
        "train_seconds": round(result.seconds, 1),
        "wall_seconds": round(wall, 1),
        # this invocation's wall time by phase (distillation and evaluations: over all invocations of the run)
        "time": {"setup_and_teacher_training": round(setup_seconds, 1),
                 "teacher_evaluation": round(teacher_eval_seconds, 1),
                 "distillation_steps": round(result.seconds, 1),
                 "evaluations": round(result.eval_seconds + final_eval_seconds, 1)},
        "classes": list(parts.test.classes),
        "device": str(device),
        "processes": d.world,
        "effective_batch": recipe.train.effective_batch(d.world),
        "lr": recipe.train.lr_at(d.world),
        "run_dir": str(run_dir),
    }
    if views > 1:  # what the training-time validation (middle view only) measured last, for comparison
        metrics["student_middle_view"] = {"top1": result.final.get("top1", float("nan")),
                                          "top5": result.final.get("top5", float("nan"))}
    if recipe.eval.bn_recalibrate and final:
        # test-time adaptation: looks at unlabelled TEST inputs; reported apart from the method's number
        tuned = recalibrate_bn(parts.student, test_batches, device=device, views=views)
        metrics["student_bn_recalibrated_on_test_inputs"] = evaluate_student(tuned, all_views=True)
    if final and d.is_main:  # per-class accuracy, confusion matrix, teacher agreement (aip.inspect)
        metrics.update(inspect_student(recipe, parts.student, parts.teacher, parts.test, out=run_dir, device=device))
    if result.history and d.is_main:
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        plot_curves(result.history, run_dir / "curves.png", title=recipe.name, teacher_top1=teacher_acc["top1"])
    return metrics


def describe_models(recipe: Recipe) -> dict[str, int]:
    """Build the recipe's student (and teacher, unless it comes from torch.hub) on the meta device, so an
    unknown architecture or a bad ``kwargs`` key fails at ``aip check`` time; returns their parameter counts
    (with a 10-class head: the real class count needs the dataset)."""
    modality = load_modality(recipe.modality)
    specs = {"student": recipe.student}
    if recipe.teacher.kind != "hub":
        specs["teacher"] = recipe.teacher
    counts = {}
    with torch.device("meta"):  # no memory, no weights downloaded
        for role, spec in specs.items():
            model = build_model(modality, recipe, spec, num_classes=10, pretrained=False)
            counts[f"{role} {spec.arch}"] = sum(p.numel() for p in model.parameters())
    return counts


def train_teacher(recipe: Recipe, *, device: torch.device, force: bool = False) -> dict[str, Any]:
    """Train (or find cached) the recipe's ``teacher.kind = "train"`` teacher; returns its test accuracy."""
    if recipe.teacher.kind != "train":
        raise AipError(f"teacher.kind is {recipe.teacher.kind!r}; `aip teacher` trains only teacher.kind = 'train'")
    modality = load_modality(recipe.modality)
    test = modality.data(recipe, split="test", train=False)
    path = teacher_path(recipe, test)
    if force:
        path.unlink(missing_ok=True)
        path.with_suffix(".pt").unlink(missing_ok=True)  # the cache of older versions
    teacher = load_teacher(recipe, modality, device=device, data=test)
    acc = teacher_accuracy(recipe, teacher, test, device=device)
    return {"path": str(path), "top1": acc["top1"], "top5": acc["top5"], "num_classes": test.num_classes}


def inspect_student(recipe: Recipe, student: torch.nn.Module, teacher: torch.nn.Module | None, test: Any, *,
                    out: Path, device: torch.device) -> dict[str, Any]:
    """The keys :mod:`aip.inspect` adds to ``metrics.json`` (and ``classes``); draws ``out/confusion.png``."""
    classes = class_names(test.num_classes, list(test.classes))
    batches = loader(test, batch_size=recipe.eval.batch_size, workers=recipe.eval.workers, limit=recipe.eval.limit)
    report = inspect(student, batches, classes=classes, device=device, teacher=teacher, views=test.views,
                     amp=Policy.of(recipe, device).amp, png=out / CONFUSION_PNG)
    return {"classes": classes, **report}


def evaluate_checkpoint(recipe: Recipe, path: Path, *, device: torch.device) -> dict[str, Any]:
    """Accuracy of a student checkpoint (``best.pt`` or ``last.pt`` of a run) on the recipe's test split.

    Also writes the :mod:`aip.inspect` report (per-class accuracy, confusion matrix, agreement with the
    recipe's teacher when it is available without training) into ``metrics.json`` beside the checkpoint."""
    modality = load_modality(recipe.modality)
    test = modality.data(recipe, split="test", train=False)
    student = build_model(modality, recipe, recipe.student, num_classes=test.num_classes, pretrained=False)
    state = checkpoint.load(path)
    checkpoint.check_finite(checkpoint.state_dict_in(state), what=f"checkpoint {path}")
    checkpoint.load_state(student, checkpoint.state_dict_in(state), what=f"checkpoint {path}",
                          fix=f"pass the recipe the run used (student.arch is {recipe.student.arch!r} here)")
    batches = loader(test, batch_size=recipe.eval.batch_size, workers=recipe.eval.workers, limit=recipe.eval.limit)
    acc: dict[str, Any] = evaluate(student.to(device), batches, device=device, amp=Policy.of(recipe, device).amp,
                                   views=test.views)
    try:
        teacher = load_teacher(recipe, modality, device=device, data=test, train_if_missing=False)
    except AipError as e:  # no cached teacher or no network: report the student alone
        print(f"warning: no teacher-student agreement ({e})", file=sys.stderr)
        teacher = None
    acc.update(inspect_student(recipe, student, teacher, test, out=path.parent, device=device))
    metrics_path = path.parent / "metrics.json"
    try:
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    except json.JSONDecodeError:
        metrics = {}
    metrics.update({k: acc[k] for k in ("classes", "per_class", "agreement", "confusion_png") if k in acc})
    files.write_text(json.dumps(metrics, indent=2), metrics_path)
    return acc


def preview(recipe: Recipe, *, out: Path, count: int = 64, device: torch.device) -> list[Path]:
    """Write what the student sees (raw views and augmented views) as images; returns the files."""
    modality = load_modality(recipe.modality)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AipError(f"preview folder {out} could not be made ({e.strerror}); pass --out to a writable "
                       "folder") from None
    torch.manual_seed(recipe.train.seed)
    sampler = modality.sampler(recipe, device=device)
    augmenter = modality.augmenter(recipe, device=device)
    views = sampler.sample(count)
    files = modality.preview(views, out / "views.png")
    files += modality.preview(augmenter(views), out / "augmented.png")
    return files
