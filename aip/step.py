"""One optimiser step, shared by everything that trains: distillation (``aip run``), its benchmark
(``aip bench``) and supervised teacher training (``aip teacher``).

:func:`train_step` is the generic step: for each micro-batch ``(x, target)``, forward, loss, backward (scaled
by the number of micro-batches, so accumulation sums to one batch's gradient); then clipping and the optimiser
step. :func:`distill_step` feeds it the method's micro-batches: views of the single datum, labelled by the
frozen teacher. Both return named losses as a dict of detached device tensors (``"loss"`` first), as timm's
distillation task does, so the caller decides when to read them back (reading forces a device sync).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aip.hardware import Policy
from aip.loss import distillation_loss
from aip.recipe import Recipe
from aip.select import STUDENT_AWARE, adversarial_views, select_indices

Losses = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], Losses]


def train_step(*, model: nn.Module, optimizer: torch.optim.Optimizer, micro_batches: Iterable[tuple[torch.Tensor,
               torch.Tensor]], count: int, loss_fn: LossFn, policy: Policy, grad_clip: float = 0.0,
               params: list[nn.Parameter] | None = None) -> Losses:
    """One optimiser step over ``count`` micro-batches; returns the losses averaged over them.

    ``model`` may be a DistributedDataParallel wrapper: gradients are then averaged over processes on the last
    micro-batch only (``no_sync`` before). ``params``: what ``grad_clip`` clips (default: ``model``'s).
    """
    optimizer.zero_grad(set_to_none=True)
    total: Losses = {}
    for i, (x, target) in enumerate(micro_batches):
        last = i == count - 1
        sync = model.no_sync() if not last and hasattr(model, "no_sync") else nullcontext()
        with sync:
            with policy.autocast():
                out = model(x)  # (B, K)
            losses = loss_fn(out, target)
            (losses["loss"] / count).backward()
        for k, v in losses.items():
            total[k] = total[k] + v.detach() if k in total else v.detach()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(params if params is not None else list(model.parameters()), grad_clip)
    optimizer.step()
    return {k: v / count for k, v in total.items()}


def distillation_losses(recipe: Recipe) -> LossFn:
    """The recipe's KD loss, plus the share of views on which student and teacher agree (a cheap, sync-free
    sign of progress)."""
    cfg = recipe.loss

    def losses(s_logits: torch.Tensor, t_logits: torch.Tensor) -> Losses:
        loss = distillation_loss(s_logits, t_logits, kind=cfg.kind, temperature=cfg.temperature, t2_scale=cfg.t2_scale)
        agree = (s_logits.argmax(-1) == t_logits.argmax(-1)).float().mean()
        return {"loss": loss, "agreement": agree}

    return losses


def teacher_logits(teacher: nn.Module, x: torch.Tensor, *, chunk: int, policy: Policy) -> torch.Tensor:
    """The frozen teacher's logits for ``x`` (no gradients), on the CPU computed ``chunk`` views at a time.

    A view pool's activations are ``view_pool`` times a batch's: on the CPU, tensors that large exceed glibc's
    largest heap block (32 MiB), so every step maps and faults them in anew (docs/benchmarks.md). Labelling the
    pool one batch at a time keeps each activation in the heap and in cache, at the same result per view (the
    teacher is in eval mode, so views do not interact). A GPU gets the whole pool in one pass."""
    with torch.no_grad(), policy.autocast():
        if x.device.type != "cpu" or x.shape[0] <= chunk:
            return teacher(x)
        return torch.cat([teacher(part) for part in x.split(chunk)])


@dataclass
class SelectTimer:
    """Host seconds spent choosing views (the pool's student forward, the adversarial steps, the relabelling),
    added up until the trainer reads them into ``steps.jsonl`` as ``select_share``. On CUDA this is the time to
    queue the work; the step's ``samples_per_s`` holds its full cost."""

    seconds: float = 0.0


def plain_module(model: nn.Module) -> nn.Module:
    """``model`` without its ``torch.compile`` and DistributedDataParallel wrappers: the module whose forward a
    selection policy calls (no gradient syncs, no recompilation for an eval-mode or input-gradient forward)."""
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(model, torch._dynamo.eval_frame.OptimizedModule):
        model = model._orig_mod
    if isinstance(model, DistributedDataParallel):
        model = model.module
    return model


class _EvalMode:
    """The student in eval mode for a scoring forward, then back in the mode it was in. Eval mode because a
    train-mode forward over the pool would move BatchNorm's running statistics (one more update per step than
    the run makes without selection) and normalise by the pool's statistics instead of the kept batch's; in eval
    mode views do not interact, so the pool can be scored in chunks, and nothing of the student changes."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.was = model, model.training

    def __enter__(self) -> nn.Module:
        self.model.eval()
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was)


def labelled_views(*, data: Callable[[], torch.Tensor], teacher: nn.Module, count: int, batch_size: int,
                   view_pool: int, policy: Policy, select: str = "balanced", student: nn.Module | None = None,
                   temperature: float = 1.0, adversarial_eps: float = 0.0, adversarial_steps: int = 0,
                   timer: SelectTimer | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` micro-batches of augmented views and the teacher's logits for them.

    With ``view_pool`` > 1, ``data()`` makes ``view_pool x batch_size`` views and ``batch_size`` of them are
    kept by the policy ``select`` (:mod:`aip.select`). Teacher and student see the same tensor. The student-aware
    policies need ``student`` (the training module; its plain module runs in eval mode, without gradients to its
    weights): ``learnability`` scores the pool with it, ``adversarial`` moves the kept views (also with
    ``view_pool`` = 1) by ``adversarial_steps`` signed-gradient steps of relative size ``adversarial_eps`` and
    has the teacher label the moved views. ``timer`` adds up the host time of the selection.
    """
    if select in STUDENT_AWARE and student is None:
        raise ValueError(f"the {select} policy needs the student")
    scorer = plain_module(student) if student is not None else None
    for _ in range(count):
        x = data()  # (B * view_pool, ...) views of the one datum, augmented
        t_logits = teacher_logits(teacher, x, chunk=batch_size, policy=policy)  # (B * view_pool, K)
        start = time.perf_counter()
        if view_pool > 1:
            s_logits = None
            if select == "learnability":
                with _EvalMode(scorer) as s:
                    s_logits = teacher_logits(s, x, chunk=batch_size, policy=policy)  # (B * view_pool, K)
            keep = select_indices(select, t_logits, batch_size, student_logits=s_logits, temperature=temperature)
            x, t_logits = x[keep], t_logits[keep]
        if select == "adversarial" and adversarial_steps > 0:
            frozen = plain_module(teacher)
            with _EvalMode(scorer) as s, policy.autocast():
                x = adversarial_views(x, teacher=frozen, student=s, temperature=temperature, eps=adversarial_eps,
                                      steps=adversarial_steps)
            t_logits = teacher_logits(teacher, x, chunk=batch_size, policy=policy)  # the teacher labels them
        if timer is not None:
            timer.seconds += time.perf_counter() - start
        yield x, t_logits


def distill_step(*, recipe: Recipe, data: Callable[[], torch.Tensor], teacher: nn.Module, student: nn.Module,
                 optimizer: torch.optim.Optimizer, policy: Policy, params: list[nn.Parameter] | None = None,
                 timer: SelectTimer | None = None) -> Losses:
    """One distillation step of the method: sample -> augment -> teacher (no grad) -> [select] -> student -> KD
    loss -> step.

    ``student`` is the module that trains (possibly compiled or wrapped for data parallelism; ``params`` are
    then the plain student's, for clipping); ``teacher`` is frozen. ``timer`` adds up the selection's host time.
    """
    cfg = recipe.train
    batches = labelled_views(data=data, teacher=teacher, count=cfg.grad_accum, batch_size=cfg.batch_size,
                             view_pool=cfg.view_pool, policy=policy, select=cfg.view_select, student=student,
                             temperature=recipe.loss.temperature, adversarial_eps=cfg.adversarial_eps,
                             adversarial_steps=cfg.adversarial_steps, timer=timer)
    return train_step(model=student, optimizer=optimizer, micro_batches=batches, count=cfg.grad_accum,
                      loss_fn=distillation_losses(recipe), policy=policy, grad_clip=cfg.grad_clip, params=params)


def supervised_losses(label_smoothing: float = 0.0) -> LossFn:
    """Cross-entropy against labels (teacher training) and the batch accuracy."""

    def losses(logits: torch.Tensor, y: torch.Tensor) -> Losses:
        loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
        return {"loss": loss, "accuracy": (logits.argmax(-1) == y).float().mean()}

    return losses
