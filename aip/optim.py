"""Optimisers and learning-rate schedules named in recipes (per-step schedules, so resume is exact)."""

from __future__ import annotations

import math

import torch
from torch import nn


def make_optimizer(params: list[nn.Parameter], *, name: str, lr: float, weight_decay: float,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    """The named optimiser; on CUDA its fused kernels (one launch per step instead of several per tensor)."""
    fused = bool(params) and all(p.is_cuda for p in params)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused or None)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True,
                               fused=fused or None)
    raise ValueError(f"unknown optimizer {name!r}")


def lr_factor(step: int, *, total: int, schedule: str, warmup: int = 0, milestones: tuple[int, ...] = (),
              gamma: float = 0.5) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total`` steps.

    ``constant``/``cosine``/``step`` follow an optional linear warm-up of ``warmup`` steps; ``onecycle`` is
    the 1cycle policy (30% cosine warm-up from lr/25, cosine decay to lr/1e4), ignoring ``warmup``.
    """
    if schedule == "onecycle":
        up = max(1, int(0.3 * total))
        if step < up:
            return 1 / 25 + (1 - 1 / 25) * (1 - math.cos(math.pi * step / up)) / 2
        t = (step - up) / max(1, total - up)
        return 1e-4 + (1 - 1e-4) * (1 + math.cos(math.pi * t)) / 2
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        t = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    if schedule == "step":
        return gamma ** sum(step >= m for m in milestones)
    raise ValueError(f"unknown schedule {schedule!r}")


def make_scheduler(opt: torch.optim.Optimizer, *, total: int, schedule: str, warmup: int = 0,
                   milestones: tuple[int, ...] = (), gamma: float = 0.5) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total=total, schedule=schedule, warmup=warmup, milestones=milestones, gamma=gamma)
    )
