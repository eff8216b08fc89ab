"""The distillation loop: sample -> augment -> teacher (no grad) -> student -> KD loss -> step -> log -> checkpoint.

One readable ``fit()``; gradient accumulation (``train.grad_accum``) and data parallelism (``torchrun``, see
:mod:`aip.distributed`) are handled inline. Resume is automatic: if the run directory holds ``last.pt`` of the
same recipe, the student, optimiser, scheduler, RNG state and step are restored and training continues.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from aip import checkpoint, distributed, graphs
from aip.errors import AipError
from aip.evaluate import autocast
from aip.loss import distillation_loss
from aip.modality import Augmenter, SourceSampler
from aip.optim import make_optimizer, make_scheduler
from aip.recipe import Recipe
from aip.select import balanced_indices


@dataclass
class FitResult:
    """What a finished (or resumed-and-finished) run reports."""

    step: int
    final: dict[str, float]
    best: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def use_amp(recipe: Recipe, device: torch.device) -> bool:
    return recipe.train.amp == "bf16" or (recipe.train.amp == "auto" and device.type == "cuda")


def use_channels_last(recipe: Recipe, device: torch.device) -> bool:  # noqa: ARG001
    """Channels-last for 4-D batches: ``auto`` turns it on everywhere, since convolutions ran faster in it on
    both CUDA and CPU (about 2x for a training step of the Fashion-MNIST CNN on CPU, docs/benchmarks.md)."""
    return recipe.train.channels_last in ("on", "auto")


def tune_backends(device: torch.device) -> None:
    """On CUDA: let cuDNN pick the fastest convolution algorithms for the (fixed) view shapes, and run the
    float32 matrix products that autocast leaves in float32 on TF32 tensor cores."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")


def to_memory_format(model: nn.Module, memory_format: torch.memory_format) -> nn.Module:
    """``model.to(memory_format=...)``, leaving models with 3-D convolutions (video) as they are: channels-last
    is a layout of 4-D tensors only."""
    if memory_format == torch.channels_last and any(p.dim() == 5 for p in model.parameters()):
        return model
    return model.to(memory_format=memory_format)


def data_path(recipe: Recipe, sampler: SourceSampler, augmenter: Augmenter, *, device: torch.device,
              memory_format: torch.memory_format = torch.contiguous_format) -> graphs.GraphedData:
    """One training batch per call: ``view_pool x batch_size`` raw views, augmented (4-D image batches in
    ``memory_format``); on CUDA replayed from a CUDA graph when ``train.graph_data`` allows it and the modality
    marked its sampler and augmenter capturable (:mod:`aip.graphs`): a batch is then valid until the next call."""
    n = recipe.train.batch_size * recipe.train.view_pool

    def make() -> torch.Tensor:
        x = augmenter(sampler.sample(n))
        return x.contiguous(memory_format=memory_format) if x.dim() == 4 else x  # channels-last: 4-D only

    enabled = graphs.wanted(recipe, device) and graphs.capturable(sampler, augmenter)
    return graphs.GraphedData(make, device=device, enabled=enabled)


def fit(
    *,
    recipe: Recipe,
    student: nn.Module,
    teacher: nn.Module,
    sampler: SourceSampler,
    augmenter: Augmenter,
    evaluate: Callable[[nn.Module], dict[str, float]],
    run_dir: Path,
    device: torch.device,
    stop_after_epochs: int | None = None,
) -> FitResult:
    """Distil ``teacher`` into ``student`` from views of the single source datum.

    Under ``torchrun`` every rank calls this together (see :mod:`aip.distributed`): each draws its own views,
    gradients are averaged by DistributedDataParallel, and rank 0 alone writes the run directory.

    Args:
        evaluate: returns ``{"top1", "top5", ...}`` of the model it is given on the real test split (called on
            every rank at the same steps).
        run_dir: holds ``last.pt``, ``best.pt`` and ``metrics.jsonl``; an existing ``last.pt`` is resumed.
        stop_after_epochs: stop (as if interrupted) after this many epochs of this call.
    """
    cfg = recipe.train
    d = distributed.current()
    spe = cfg.steps_per_epoch_at(d.world)
    total = cfg.epochs * spe
    lr = cfg.lr_at(d.world)
    amp, channels_last = use_amp(recipe, device), use_channels_last(recipe, device)
    tune_backends(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    to_memory_format(student.to(device), memory_format)
    to_memory_format(teacher.to(device), memory_format)
    opt = make_optimizer(list(student.parameters()), name=cfg.optimizer, lr=lr,
                         weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    sched = make_scheduler(opt, total=total, schedule=cfg.schedule, warmup=round(cfg.warmup_epochs * spe),
                           milestones=tuple(round(m * spe) for m in cfg.milestones), gamma=cfg.gamma)

    fingerprint = recipe.fingerprint("modality", "source", "augment", "teacher", "student", "loss", "train")
    last_path, best_path, log_path = run_dir / "last.pt", run_dir / "best.pt", run_dir / "metrics.jsonl"
    step, best, final, history, seconds = 0, {"top1": -1.0}, {}, [], 0.0
    if distributed.agree(last_path.exists()):
        state = checkpoint.load(last_path)
        if state.get("fingerprint") != fingerprint:
            raise AipError(f"{run_dir} holds a run of a different recipe; pass --out NEW_DIR or delete {last_path}")
        if state.get("world", 1) != d.world:
            raise AipError(f"{run_dir} was trained by {state.get('world', 1)} process(es), not {d.world}; resume "
                           "it with the same number of processes, or pass --out NEW_DIR")
        student.load_state_dict(state["student"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng_per_rank"][d.rank] if "rng_per_rank" in state else state["rng"])
        step, best, final = state["step"], state["best"], state["final"]
        history, seconds = state["history"], state["seconds"]
        if step < total and d.is_main:
            tqdm.write(f"resuming {run_dir} at step {step}/{total} (epoch {step // spe})")
    else:
        torch.manual_seed(cfg.seed + d.rank)  # every rank draws different views; rank 0 as a single process
    if d.active and d.is_main:
        tqdm.write(f"{d.world} processes: effective batch {cfg.effective_batch(d.world)} "
                   f"({cfg.batch_size} x {cfg.grad_accum} accumulation x {d.world}), lr {lr:.3g} "
                   f"(lr_scaling = {cfg.lr_scaling!r}), {spe} steps per epoch")

    def save_last() -> None:
        rngs = distributed.gather(checkpoint.rng_state())  # a collective: every rank calls save_last together
        if d.is_main:
            checkpoint.save_atomic({
                "fingerprint": fingerprint, "recipe": recipe.to_dict(), "student": student.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rngs[0],
                "rng_per_rank": rngs, "world": d.world, "step": step, "best": best, "final": final,
                "history": history, "seconds": seconds,
            }, last_path)

    train_model: nn.Module = student
    if d.active:
        from torch.nn.parallel import DistributedDataParallel

        # the teacher is not wrapped: it has no gradients to average
        train_model = DistributedDataParallel(student, device_ids=[device] if device.type == "cuda" else None)
    label_model: nn.Module = teacher
    if cfg.compile:
        train_model, label_model = torch.compile(train_model), torch.compile(teacher)
    make_batch = data_path(recipe, sampler, augmenter, device=device, memory_format=memory_format)
    teacher.eval()
    student.train()
    epochs_done = 0
    start = time.perf_counter()
    bar = tqdm(total=total, initial=step, desc=recipe.name, dynamic_ncols=True, unit="step", disable=not d.is_main)
    # losses are summed on the device and read back only when logging: no host sync in every step
    running, seen, tick = torch.zeros((), device=device), 0, time.perf_counter()
    epoch_loss, epoch_n = torch.zeros((), device=device), 0
    try:
        while step < total:
            opt.zero_grad(set_to_none=True)
            for micro in range(cfg.grad_accum):
                # (B, ...) raw views of the one datum -> augmented; teacher and student see the same tensor
                x = make_batch()
                if make_batch.error and d.is_main:
                    tqdm.write(f"note: the data path could not be captured in a CUDA graph and runs eagerly "
                               f"({make_batch.error}); set train.graph_data = 'off' to skip the attempt")
                    make_batch.error = ""
                with torch.no_grad(), autocast(device, amp):
                    t_logits = label_model(x)  # (B * view_pool, K)
                if cfg.view_pool > 1:  # keep a batch the teacher labels evenly over the classes
                    keep = balanced_indices(t_logits, cfg.batch_size)
                    x, t_logits = x[keep], t_logits[keep]
                # DDP averages gradients on the last micro-batch only
                sync = nullcontext() if micro == cfg.grad_accum - 1 or not d.active else train_model.no_sync()
                with sync:
                    with autocast(device, amp):
                        s_logits = train_model(x)  # (B, K)
                    loss = distillation_loss(s_logits, t_logits, kind=recipe.loss.kind,
                                             temperature=recipe.loss.temperature, t2_scale=recipe.loss.t2_scale)
                    (loss / cfg.grad_accum).backward()
                running, epoch_loss = running + loss.detach(), epoch_loss + loss.detach()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(student.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            seen, epoch_n = seen + cfg.grad_accum, epoch_n + cfg.grad_accum
            bar.update(1)
            if step % cfg.log_every == 0 or step == total:
                mean = distributed.all_mean(running).item() / seen
                if not math.isfinite(mean):
                    raise AipError(f"the loss became {mean} before step {step}; lower train.lr or set train.grad_clip")
                now = time.perf_counter()
                bar.set_postfix(loss=f"{mean:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}",
                                samples_s=f"{seen * cfg.batch_size * d.world / (now - tick):.0f}")
                running, seen, tick = torch.zeros((), device=device), 0, now
            if step % spe == 0:  # end of an epoch
                epoch = step // spe
                epochs_done += 1
                seconds_now = seconds + time.perf_counter() - start
                if epoch % recipe.eval.every_epochs == 0 or step == total:
                    acc = evaluate(student)
                    student.train()
                    row = {"epoch": epoch, "step": step,
                           "loss": distributed.all_mean(epoch_loss).item() / max(epoch_n, 1),
                           "lr": sched.get_last_lr()[0], **acc, "seconds": round(seconds_now, 1)}
                    history.append(row)
                    if d.is_main:
                        with open(log_path, "a") as f:
                            f.write(json.dumps(row) + "\n")
                        tqdm.write(f"epoch {epoch}: loss {row['loss']:.4f}  "
                                   f"top1 {acc['top1']:.2f}%  top5 {acc['top5']:.2f}%")
                    final = acc
                    if acc["top1"] > best["top1"]:
                        best = {**acc, "epoch": epoch}
                        if d.is_main:
                            checkpoint.save_atomic({"student": student.state_dict(), "recipe": recipe.to_dict(),
                                                    "epoch": epoch, "metrics": acc}, best_path)
                epoch_loss, epoch_n = torch.zeros((), device=device), 0
                running, seen, tick = torch.zeros((), device=device), 0, time.perf_counter()  # training only
                seconds = seconds + time.perf_counter() - start
                start = time.perf_counter()
                save_last()
                if stop_after_epochs is not None and epochs_done >= stop_after_epochs and step < total:
                    break
    except KeyboardInterrupt:
        seconds += time.perf_counter() - start
        start = time.perf_counter()
        if not d.active:  # with several processes the others may be gone: keep the last epoch's checkpoint
            save_last()
        raise
    finally:
        bar.close()
    seconds += time.perf_counter() - start
    return FitResult(step=step, final=final, best=best, history=history, seconds=seconds)
