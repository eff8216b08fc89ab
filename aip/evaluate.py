"""Top-1/top-5 accuracy of a classifier on a labelled split, with an optional (off by default) BatchNorm
re-estimation on unlabelled test inputs.

:class:`Evaluator` is the one place where a recipe's evaluation settings (``eval.batch_size``, ``eval.workers``,
``eval.limit``, the AMP flag of its device policy, the split's views per item) meet the test split: every command
that measures a model on it (``aip run``, ``aip teacher``, ``aip eval``) asks one.
"""

from __future__ import annotations

import copy
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from aip import distributed
from aip.hardware import Policy, autocast
from aip.modality import LabelledData
from aip.progress import tqdm

if TYPE_CHECKING:
    from aip.recipe import Recipe


def loader(data: LabelledData, *, batch_size: int, workers: int = 0, limit: int = 0,
           shard: bool = False) -> DataLoader:
    """Batches of a labelled split (``limit``: an evenly spread subset; ``shard``: this rank's share of it)."""
    ds = data.dataset
    if limit and limit < len(ds):  # type: ignore[arg-type]
        # an evenly spread subset, so every class is represented in quick evaluations
        step = len(ds) / limit  # type: ignore[arg-type]
        ds = Subset(ds, [int(i * step) for i in range(limit)])
    d = distributed.current()
    if shard and d.active:  # every item exactly once over all ranks (no padding, unlike DistributedSampler)
        ds = Subset(ds, range(d.rank, len(ds), d.world))  # type: ignore[arg-type]
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)


def scores(model: nn.Module, x: torch.Tensor, *, views: int = 1, middle_only: bool = False) -> torch.Tensor:
    """Class scores ``(B, K)`` of a batch: logits, or for multi-view items ``(B, V, *view)`` the softmax averaged
    over the ``V`` views of each item (``middle_only``: the logits of the middle view alone)."""
    if views <= 1:
        return model(x)
    if middle_only:
        return model(x[:, views // 2])
    b = x.shape[0]
    probs = model(x.flatten(0, 1)).float().softmax(-1)  # (B * V, K)
    return probs.view(b, views, -1).mean(1)


@torch.no_grad()
def evaluate(model: nn.Module, batches: DataLoader, *, device: torch.device, amp: bool = False,
             desc: str = "eval", views: int = 1, middle_only: bool = False,
             sharded: bool = False) -> dict[str, float]:
    """Accuracy (%) of ``model`` in eval mode: ``{"top1", "top5", "n"}``.

    ``views`` > 1: items are stacks of views whose softmax is averaged (see :func:`scores`).
    ``sharded``: ``batches`` is this rank's shard (``loader(shard=True)``); the counts are summed over ranks, so
    every rank returns the accuracy on the whole split (every rank must call this together)."""
    was_training = model.training
    model.eval()
    correct1 = correct5 = total = 0
    for x, y in tqdm(batches, desc=desc, leave=False, dynamic_ncols=True):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, amp):
            logits = scores(model, x, views=views, middle_only=middle_only)
        k = min(5, logits.shape[-1])
        top = logits.float().topk(k, dim=-1).indices
        hit = top == y[:, None]
        correct1 += hit[:, 0].sum().item()
        correct5 += hit.any(-1).sum().item()
        total += y.numel()
    model.train(was_training)
    if sharded:
        counts = distributed.all_sum(torch.tensor([correct1, correct5, total], dtype=torch.float64, device=device))
        correct1, correct5, total = (int(c) for c in counts.tolist())
    total = max(total, 1)
    return {"top1": 100.0 * correct1 / total, "top5": 100.0 * correct5 / total, "n": float(total)}


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: DataLoader, *, device: torch.device, max_batches: int = 50,
                   views: int = 1) -> nn.Module:
    """A copy of ``model`` whose BatchNorm statistics are re-estimated on the (unlabelled) inputs of ``batches``.

    This looks at test images, so it is a test-time adaptation, not part of the method: off by default
    (``eval.bn_recalibrate``) and labelled in every output that uses it.
    """
    model = copy.deepcopy(model)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
    model.train()
    for i, (x, _) in enumerate(batches):
        if i >= max_batches:
            break
        model(x.to(device).flatten(0, 1) if views > 1 else x.to(device))
    return model.eval()


class Evaluator:
    """The recipe's test split, batched as its ``eval`` section says, and the models measured on it.

    ``evaluate`` judges ``eval.limit`` items (an evenly spread subset; all when 0); under ``torchrun`` each rank
    takes its share and the counts are summed, so every rank must call it together. ``full=True`` measures every
    item of the split on this process alone (what a cached teacher's header records)."""

    def __init__(self, recipe: Recipe, test: LabelledData, *, device: torch.device) -> None:
        self.recipe, self.test, self.device = recipe, test, device
        self.amp = Policy.of(recipe, device).amp
        self.views = test.views

    def loader(self, *, shard: bool = False, limit: bool = True) -> DataLoader:
        """Batches of the split: ``eval.limit`` items unless ``limit=False``; ``shard``: this rank's share."""
        cfg = self.recipe.eval
        return loader(self.test, batch_size=cfg.batch_size, workers=cfg.workers, limit=cfg.limit if limit else 0,
                      shard=shard)

    @cached_property
    def batches(self) -> DataLoader:
        """This rank's share of the ``eval.limit`` items (made once: every evaluation of a run reuses it)."""
        return self.loader(shard=True)

    def evaluate(self, model: nn.Module, *, all_views: bool = True, desc: str = "eval",
                 full: bool = False) -> dict[str, float]:
        """``{"top1", "top5", "n"}`` of ``model``; ``all_views=False`` judges a multi-view item by its middle
        view alone (the cheaper validation during training)."""
        if full:
            return evaluate(model, self.loader(limit=False), device=self.device, amp=self.amp, desc=desc,
                            views=self.views, middle_only=not all_views)
        return evaluate(model, self.batches, device=self.device, amp=self.amp, desc=desc, views=self.views,
                        middle_only=not all_views, sharded=True)

    def recalibrated(self, model: nn.Module) -> nn.Module:
        """:func:`recalibrate_bn` on this rank's share of the test inputs (a test-time adaptation)."""
        return recalibrate_bn(model, self.batches, device=self.device, views=self.views)

    def inspect(self, student: nn.Module, teacher: nn.Module | None, *, classes: list[str],
                png: Path | None) -> dict[str, Any]:
        """:func:`aip.inspect.inspect` over the ``eval.limit`` items, all on this process (rank 0 draws)."""
        from aip.inspect import inspect

        return inspect(student, self.loader(), classes=classes, device=self.device, teacher=teacher,
                       views=self.views, amp=self.amp, png=png)
