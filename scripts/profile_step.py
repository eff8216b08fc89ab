"""Where a recipe's distillation step spends its time, op by op: torch.profiler over each stage on its own.

    python scripts/profile_step.py recipes/spoken-keywords.toml --device cpu --num-classes 12 \\
        --set source.uri=synthetic:noise

Builds the recipe's sampler, augmenter, teacher and student as ``aip bench`` does (the CLI's allocator settings
of :mod:`aip.allocator`, random weights, the recipe's batch size, view pool, AMP, channels-last and compile
settings), then profiles ``--steps`` calls of each stage, after ``--warmup`` untimed ones: the data (source
sampler + augmenter, ``batch_size x view_pool`` views), the teacher's forward pass on those views, and the
student's forward + backward + optimiser step on ``batch_size`` of them. For each stage it prints the wall time
and the process's CPU time per call (on a machine shared with other work the CPU time is the steadier figure;
with one thread it is what the wall time would be on a quiet machine) and the ``--rows`` ops that take the most
time of their own (self CPU time; self CUDA time on a GPU; ``--rows 0``: times only). Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from aip import recipe as recipe_mod
from aip.allocator import keep_freed_memory
from aip.hardware import Policy, resolve_device
from aip.optim import make_optimizer
from aip.registry import load_modality
from aip.step import distillation_losses, train_step
from aip.teacher import FrozenTeacher, build_model
from aip.trainer import data_path


def stages(recipe: recipe_mod.Recipe, *, device: torch.device, num_classes: int
           ) -> list[tuple[str, Callable[[], Any]]]:
    """The recipe's three stages as callables, built as :func:`aip.bench.bench` builds them."""
    modality = load_modality(recipe.modality)
    cfg = recipe.train
    k = num_classes or modality.data(recipe, split="test", train=False).num_classes
    torch.manual_seed(cfg.seed)
    teacher_spec = recipe.student if recipe.teacher.kind == "hub" else recipe.teacher  # hub: needs a download
    policy = Policy.of(recipe, device)
    policy.tune()
    teacher = policy.place(FrozenTeacher(build_model(modality, recipe, teacher_spec, num_classes=k,
                                                     pretrained=False)))
    student = policy.place(build_model(modality, recipe, recipe.student, num_classes=k, pretrained=False))
    params = list(student.parameters())
    opt = make_optimizer(params, name=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    train_model = torch.compile(student) if cfg.compile else student
    label_model = torch.compile(teacher) if cfg.compile else teacher
    data = data_path(recipe, modality.sampler(recipe, device=device), modality.augmenter(recipe, device=device),
                     policy=policy)
    fixed = data().clone()  # a replayed CUDA graph's output is overwritten by the next call
    b = cfg.batch_size

    def teacher_forward() -> torch.Tensor:
        with torch.no_grad(), policy.autocast():
            return label_model(fixed)

    t_logits = teacher_forward()[:b].float()
    losses = distillation_losses(recipe)

    def student_step() -> None:
        train_step(model=train_model, optimizer=opt, micro_batches=[(fixed[:b], t_logits)], count=1,
                   loss_fn=losses, policy=policy, grad_clip=cfg.grad_clip, params=params)

    return [(f"data: source + augment ({b * cfg.view_pool} views)", data),
            (f"teacher forward ({b * cfg.view_pool} views)", teacher_forward),
            (f"student forward + backward + step ({b} views)", student_step)]


def profile_stage(fn: Callable[[], Any], *, steps: int, warmup: int, device: torch.device,
                  rows: int) -> tuple[float, float, float, str]:
    """Wall seconds of the warm-up calls (with ``train.compile``: the compilation), wall and CPU seconds per
    call (timed without the profiler), and the profiler's table of the ``rows`` ops that take the most time of
    their own (none if ``rows`` is 0)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    sync()
    warm = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        fn()
    sync()
    wall, cpu = (time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps
    if rows == 0:
        return warm, wall, cpu, ""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            fn()
        sync()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return warm, wall, cpu, prof.key_averages().table(sort_by=key, row_limit=rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipe")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe override, as aip run --set (repeatable)")
    p.add_argument("--device", default="auto")
    p.add_argument("--num-classes", type=int, default=0, help="class count of the models (0: the dataset's)")
    p.add_argument("--steps", type=int, default=5, help="profiled (and timed) calls per stage")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls first (compilation, caches)")
    p.add_argument("--rows", type=int, default=15, help="ops listed per stage (0: times only)")
    args = p.parse_args(argv)
    keep_freed_memory()  # glibc's settings of the aip CLI (aip.allocator), so the figures are a run's
    recipe = recipe_mod.load(args.recipe, args.overrides)
    device = resolve_device(args.device)
    print(f"# {recipe.name} on {device}, {torch.get_num_threads()} threads (torch {torch.__version__}); "
          f"{args.steps} profiled calls per stage after {args.warmup} warm-up calls")
    for name, fn in stages(recipe, device=device, num_classes=args.num_classes):
        warm, wall, cpu, table = profile_stage(fn, steps=args.steps, warmup=args.warmup, device=device,
                                               rows=args.rows)
        print(f"## {name}: {1000 * wall:,.1f} ms per call, {1000 * cpu:,.1f} ms CPU time "
              f"(warm-up: {warm:,.1f} s)" + (f"\n{table}" if table else ""))


if __name__ == "__main__":
    main()
