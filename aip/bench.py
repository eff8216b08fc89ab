"""``aip bench``: where the time of a distillation step goes, for a recipe's shapes and models, on this machine.

It times, with the recipe's batch size, view pool, AMP, channels-last and compile settings: producing the data
(source sampler + augmenter), the teacher's forward pass, the student's forward+backward+optimiser step, and the
whole distillation step (:func:`aip.step.distill_step`, the function :func:`aip.trainer.fit` runs). It ends with
the time of the recipe's whole schedule at the measured step time (and of its teacher's training, where it
trains one). The models, sampler, augmenter and data path come from :class:`aip.parts.Parts`, as ``aip run``'s
do; the models get random weights (speed does not depend on them, and nothing is downloaded or trained). With
``vs_reference`` it also times the modality's reference pipeline (for images: the paper's per-image PIL
augmentation of pre-generated patches through a DataLoader with workers). Figures, never pass/fail.
"""

from __future__ import annotations

import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aip import footprint, graphs
from aip.errors import AipError
from aip.hardware import Policy, check_step_memory
from aip.modality import Modality, ReferencePipeline
from aip.optim import make_optimizer
from aip.parts import Parts
from aip.recipe import Recipe
from aip.step import distill_step, distillation_losses, supervised_losses, teacher_logits, train_step


@dataclass
class Stage:
    name: str
    seconds: float  # per step
    samples: int  # per step

    @property
    def per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class Projection:
    """A whole schedule's time: ``steps`` optimiser steps of ``seconds`` each, on each of ``processes``."""

    what: str
    steps: int
    seconds: float
    processes: int = 1

    @property
    def total_seconds(self) -> float:
        return self.steps * self.seconds

    def line(self) -> str:
        hours = self.total_seconds / 3600
        when = f"{hours:,.1f} hours" if hours >= 1 else f"{self.total_seconds / 60:,.1f} minutes"
        return (f"this recipe's {self.what}: about {when} on this device ({self.processes} "
                f"process{'es' if self.processes > 1 else ''}; {self.steps:,} steps x {1000 * self.seconds:,.1f} ms)")


@dataclass
class BenchResult:
    device: str
    recipe: str
    shape: tuple[int, ...]
    batch: int
    pool: int
    stages: list[Stage] = field(default_factory=list)
    peak_memory_bytes: int = 0
    memory_kind: str = ""
    reference: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    profile: str = ""
    accumulation: int = 1
    projections: list[Projection] = field(default_factory=list)
    #: over the timed full steps: kernel (system) CPU time as a share of all CPU time, and minor page faults
    system_share: float | None = None
    faults_per_step: float | None = None

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    @property
    def data_share(self) -> float:
        """Share of a full step spent producing the data (sampler + augmenter)."""
        return self.stage("source + augment").seconds / self.stage("full distillation step").seconds

    @property
    def data_overhead(self) -> float | None:
        """Share of a full step that making its data adds: (full step - the same step on one fixed, already
        made batch) / full step. Lower than :attr:`data_share` where the device overlaps the data work with the
        models' (CUDA runs asynchronously); ``None`` if that stage was not timed."""
        names = {s.name for s in self.stages}
        if "step on a fixed batch" not in names:
            return None
        full = self.stage("full distillation step").seconds
        return max(0.0, full - self.stage("step on a fixed batch").seconds) / full

    def table(self) -> str:
        lines = [f"# {self.recipe} on {self.device}",
                 f"# views {tuple(self.shape)}, student batch {self.batch}, teacher labels {self.batch * self.pool}"
                 f" views per step (view_pool {self.pool})",
                 "| stage | ms per step | samples/s |", "|---|---|---|"]
        for s in self.stages:
            lines.append(f"| {s.name} ({s.samples} per step) | {1000 * s.seconds:,.1f} | {s.per_second:,.0f} |")
        lines.append(f"| share of the step producing data | {100 * self.data_share:.1f} % | |")
        if self.data_overhead is not None:
            lines.append(f"| time the data adds to the step (full step - step on a fixed batch) | "
                         f"{100 * self.data_overhead:.1f} % | |")
        lines.append(f"| peak memory ({self.memory_kind}) | {self.peak_memory_bytes / 2**30:.2f} GiB | |")
        if self.system_share is not None and self.faults_per_step is not None:
            lines.append(f"| full step: kernel time, share of the process's CPU time | "
                         f"{100 * self.system_share:.1f} % | |")
            lines.append(f"| full step: minor page faults per step | {self.faults_per_step:,.0f} | |")
        if self.reference:
            r = self.reference
            lines.append(f"| reference pipeline ({r['workers']:.0f} workers) | "
                         f"{1000 * self.batch * self.pool / r['views_per_second']:,.1f} | "
                         f"{r['views_per_second']:,.0f} |")
            ours = self.stage("source + augment").per_second
            lines.append(f"| aip data / reference | {ours / r['views_per_second']:.2f}x | |")
            lines.append(f"| per core: aip data ({torch.get_num_threads()} threads) vs reference | "
                         f"{ours / torch.get_num_threads():,.0f} vs "
                         f"{r['views_per_second'] / max(r['workers'], 1):,.0f} views/s | |")
        lines += [f"# {n}" for n in self.notes]
        lines += [p.line() for p in self.projections]
        if self.profile:
            lines += ["", "# profile of the full distillation step (torch.profiler, ops by own time)", self.profile]
        return "\n".join(lines)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} threads (torch {torch.__version__})"


def _timed(fn: Callable[[], Any], *, steps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def _num_classes(parts: Parts, given: int, notes: list[str]) -> int:
    if given:
        return given
    try:
        return parts.test.num_classes
    except AipError as e:
        notes.append(f"dataset not readable here ({e}); models built with 1000 classes (pass --num-classes)")
        return 1000


@dataclass
class _Setup:
    """What the timed stages share: the run's parts, placed models, optimiser and data path."""

    parts: Parts
    teacher: nn.Module  # as the step calls them (compiled with train.compile)
    student: nn.Module
    params: list[nn.Parameter]
    opt: torch.optim.Optimizer
    data: graphs.GraphedData
    fixed: torch.Tensor  # one batch of the data path, kept across calls
    notes: list[str]

    @property
    def policy(self) -> Policy:
        return self.parts.policy

    def full_step(self, x: torch.Tensor | None = None) -> None:  # exactly aip.trainer.fit's step
        distill_step(recipe=self.parts.recipe, data=self.data if x is None else (lambda: x), teacher=self.teacher,
                     student=self.student, optimizer=self.opt, policy=self.policy, params=self.params)


def _setup(recipe: Recipe, *, device: torch.device, num_classes: int) -> _Setup:
    """The parts ``aip run`` would build (:class:`aip.parts.Parts`), with a random-weight teacher."""
    cfg = recipe.train
    notes: list[str] = ["random weights; teacher kind and dataset do not change the speed"]
    parts = Parts(recipe, device=device)
    parts._num_classes = _num_classes(parts, num_classes, notes)
    torch.manual_seed(cfg.seed)
    policy = parts.policy
    policy.tune()
    # the models fit in memory (built on the meta device first), before either is allocated
    footprint.check_parts(parts, parts.first_views, classes_from="--num-classes" if num_classes else "the dataset")
    teacher = policy.place(parts.random_teacher(notes))
    student = policy.place(parts.model(recipe.student))
    check_step_memory(recipe, parts.first_views, device)
    params = list(student.parameters())
    opt = make_optimizer(params, name=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    train_model = torch.compile(student) if cfg.compile else student
    label_model = torch.compile(teacher) if cfg.compile else teacher
    if cfg.compile:
        notes.append("train.compile: student and teacher compiled by torch.compile (compilation is in the warm-up)")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    data = parts.data_path()
    fixed = data().clone()  # kept across calls (a replayed batch is overwritten by the next)
    if data.active:
        notes.append("data path replayed from a CUDA graph (train.graph_data; aip.graphs)")
    elif data.error:
        notes.append(f"data path not capturable, run eagerly: {data.error}")
    elif device.type == "cuda":
        why = "the modality did not mark it capturable" if cfg.graph_data != "off" else "train.graph_data = 'off'"
        notes.append(f"data path run eagerly ({why})")
    return _Setup(parts=parts, teacher=label_model, student=train_model, params=params, opt=opt, data=data,
                  fixed=fixed, notes=notes)


def bench(recipe: Recipe, *, device: torch.device, steps: int = 10, warmup: int = 3, num_classes: int = 0,
          vs_reference: bool = False, workers: int | None = None, profile: int = 0,
          processes: int = 1) -> BenchResult:
    """Time each stage of the recipe's distillation step on ``device`` (see the module docstring).

    ``profile``: also run that many full steps under ``torch.profiler`` and keep its table of the ops that take
    the most time of their own (on the GPU when ``device`` is CUDA) in ``BenchResult.profile``.
    ``processes``: also project the schedule's time for that many data-parallel processes, each as fast as
    this one.
    """
    cfg = recipe.train
    s = _setup(recipe, device=device, num_classes=num_classes)
    result = BenchResult(device=device_name(device), recipe=recipe.name, shape=tuple(s.fixed.shape[1:]),
                         batch=cfg.batch_size, pool=cfg.view_pool, notes=s.notes, accumulation=cfg.grad_accum)
    _time_stages(s, result, steps=steps, warmup=warmup)
    if device.type == "cuda":
        result.peak_memory_bytes, result.memory_kind = torch.cuda.max_memory_allocated(device), "CUDA allocated"
    else:  # ru_maxrss is KiB on Linux
        result.peak_memory_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        result.memory_kind = "process RSS"
    result.projections = [Projection("distillation", cfg.epochs * cfg.steps_per_epoch_at(p),
                                     result.stage("full distillation step").seconds, p)
                          for p in sorted({1, processes})]
    teacher = _teacher_projection(s, steps=steps, warmup=warmup)
    if teacher is not None:
        result.projections.append(teacher)
    if profile:
        result.profile = _profile(s.full_step, steps=profile, device=device)
    if vs_reference:
        result.reference = _reference(s, workers=workers, steps=steps, warmup=warmup)
    return result


def _time_stages(s: _Setup, result: BenchResult, *, steps: int, warmup: int) -> None:
    """Time each stage into ``result.stages`` (and the full step's kernel share and page faults)."""
    recipe, device, policy = s.parts.recipe, s.parts.device, s.policy
    cfg = recipe.train
    b, pool, fixed = cfg.batch_size, cfg.view_pool, s.fixed

    def teacher_forward() -> torch.Tensor:
        return teacher_logits(s.teacher, fixed, chunk=b, policy=policy)

    t_fixed = teacher_forward()[:b].float()
    losses = distillation_losses(recipe)

    def student_step() -> None:
        train_step(model=s.student, optimizer=s.opt, micro_batches=[(fixed[:b], t_fixed)], count=1, loss_fn=losses,
                   policy=policy, grad_clip=cfg.grad_clip, params=s.params)

    for name, fn, n in (("source + augment", s.data, b * pool), ("teacher forward", teacher_forward, b * pool),
                        ("student forward + backward + step", student_step, b),
                        ("full distillation step", s.full_step, b * cfg.grad_accum),
                        ("step on a fixed batch", lambda: s.full_step(fixed), b * cfg.grad_accum)):
        before = resource.getrusage(resource.RUSAGE_SELF)
        result.stages.append(Stage(name, _timed(fn, steps=steps, warmup=warmup, device=device), n))
        if name == "full distillation step":
            used = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (used.ru_utime - before.ru_utime) + (used.ru_stime - before.ru_stime)
            result.system_share = (used.ru_stime - before.ru_stime) / cpu if cpu > 0 else 0.0
            result.faults_per_step = (used.ru_minflt - before.ru_minflt) / (steps + warmup)


def _teacher_projection(s: _Setup, *, steps: int, warmup: int) -> Projection | None:
    """The recipe's teacher training time at the measured time of one of its steps (None if it trains none)."""
    parts, device = s.parts, s.parts.device
    teacher_steps = _teacher_steps(parts.modality, parts.recipe, s.notes)
    if not teacher_steps:
        return None
    fit = parts.recipe.teacher.fit
    trainee = s.policy.place(parts.model(parts.recipe.teacher))
    t_opt = make_optimizer(list(trainee.parameters()), name=fit.optimizer, lr=fit.lr, weight_decay=fit.weight_decay)
    xb = s.fixed[:fit.batch_size]
    yb = torch.randint(0, parts.num_classes, (xb.shape[0],), device=device)
    one = _timed(lambda: train_step(model=trainee, optimizer=t_opt, micro_batches=[(xb, yb)], count=1,
                                    loss_fn=supervised_losses(), policy=s.policy),
                 steps=steps, warmup=warmup, device=device)
    # the timed batch may be smaller than teacher.fit.batch_size (a step's views): scale by items
    return Projection("teacher training", teacher_steps, one * fit.batch_size / max(xb.shape[0], 1), 1)


def _reference(s: _Setup, *, workers: int | None, steps: int, warmup: int) -> dict[str, float]:
    """Views/s of the modality's reference pipeline (``--vs-reference``), or ``{}`` with a note if it has none."""
    recipe, modality = s.parts.recipe, s.parts.modality
    if not isinstance(modality, ReferencePipeline):
        s.notes.append(f"modality {recipe.modality!r} has no reference pipeline; --vs-reference skipped")
        return {}
    n_workers = workers if workers is not None else max(1, (os.cpu_count() or 1))
    b, pool = recipe.train.batch_size, recipe.train.view_pool
    with tempfile.TemporaryDirectory(prefix="aip-bench-") as tmp:
        batches = modality.reference_pipeline(recipe, root=Path(tmp), batch_size=b * pool, workers=n_workers,
                                              count=min(max(2 * b * pool, 256), 4096))
        rate = _reference_rate(batches, warmup=max(warmup, n_workers), steps=max(steps, 2 * n_workers))
    return {"views_per_second": rate, "workers": float(n_workers)}


def _teacher_steps(modality: Modality, recipe: Recipe, notes: list[str]) -> int:
    """Optimiser steps of the recipe's teacher training (``teacher.kind = "train"``), or 0 if it trains none or
    its training split cannot be read here."""
    if recipe.teacher.kind != "train":
        return 0
    try:
        n = len(modality.data(recipe, split="train", train=False).dataset)  # type: ignore[arg-type]
    except AipError as e:
        notes.append(f"teacher training not projected: its training split is not readable here ({e})")
        return 0
    return recipe.teacher.fit.epochs * (n // recipe.teacher.fit.batch_size)


def _profile(step: Callable[[], Any], *, steps: int, device: torch.device, rows: int = 20) -> str:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def _reference_rate(batches: Any, *, warmup: int, steps: int) -> float:
    """Views/s of a re-iterable loader: ``warmup`` batches (worker start-up), then ``steps`` timed batches."""
    def forever() -> Any:
        while True:
            yield from batches

    it = forever()
    for _ in range(warmup):
        next(it)
    n, start = 0, time.perf_counter()
    for _ in range(steps):
        n += next(it)[0].shape[0]
    return n / (time.perf_counter() - start)
