"""Top-1/top-5 accuracy of a classifier on a labelled split, with an optional (off by default) BatchNorm
re-estimation on unlabelled test inputs."""

from __future__ import annotations

import copy
from contextlib import nullcontext

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from aip.modality import LabelledData


def loader(data: LabelledData, *, batch_size: int, workers: int = 0, limit: int = 0) -> DataLoader:
    ds = data.dataset
    if limit and limit < len(ds):  # type: ignore[arg-type]
        # an evenly spread subset, so every class is represented in quick evaluations
        step = len(ds) / limit  # type: ignore[arg-type]
        ds = Subset(ds, [int(i * step) for i in range(limit)])
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, batches: DataLoader, *, device: torch.device, amp: bool = False,
             desc: str = "eval") -> dict[str, float]:
    """Accuracy (%) of ``model`` in eval mode: ``{"top1", "top5", "n"}``."""
    was_training = model.training
    model.eval()
    correct1 = correct5 = total = 0
    for x, y in tqdm(batches, desc=desc, leave=False, dynamic_ncols=True):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, amp):
            logits = model(x)
        k = min(5, logits.shape[-1])
        top = logits.float().topk(k, dim=-1).indices
        hit = top == y[:, None]
        correct1 += hit[:, 0].sum().item()
        correct5 += hit.any(-1).sum().item()
        total += y.numel()
    model.train(was_training)
    total = max(total, 1)
    return {"top1": 100.0 * correct1 / total, "top5": 100.0 * correct5 / total, "n": float(total)}


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: DataLoader, *, device: torch.device, max_batches: int = 50) -> nn.Module:
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
        model(x.to(device))
    return model.eval()
