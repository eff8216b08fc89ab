"""Looking inside an evaluation: per-class accuracy, a confusion matrix and teacher-student agreement.

:func:`inspect` runs the student (and the teacher, if given) once over a test split and returns what
``metrics.json`` holds under these keys:

- ``per_class``: ``{class name: {"top1": accuracy %, "n": items}}``;
- ``agreement``: ``{"top1": % of items where the student's top class is the teacher's, "kl": mean
  KL(teacher || student) of their class distributions in nats (temperature 1), "n": items}``, as
  big_vision's distillation evaluators report them;
- ``confusion_png``: the file name of the confusion-matrix picture (rows: true class, columns: predicted,
  each row normalised to 1), written beside ``metrics.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from aip.evaluate import scores
from aip.hardware import autocast
from aip.plot import save_figure

CONFUSION_PNG = "confusion.png"
#: above this many classes the matrix is drawn without tick labels (they would overlap)
MAX_LABELLED = 40


def _probs(model: nn.Module, x: torch.Tensor, views: int) -> torch.Tensor:
    s = scores(model, x, views=views).float()
    return s if views > 1 else s.softmax(-1)  # multi-view scores are already averaged probabilities


@torch.no_grad()
def inspect(student: nn.Module, batches: DataLoader, *, classes: list[str], device: torch.device,
            teacher: nn.Module | None = None, views: int = 1, amp: bool = False,
            png: Path | None = None) -> dict[str, Any]:
    """Per-class accuracy, confusion matrix (drawn to ``png``) and, with a ``teacher``, agreement."""
    k = len(classes)
    confusion = torch.zeros(k, k, dtype=torch.long)
    agree, kl, n = 0, 0.0, 0
    was = student.training
    student.eval()
    for x, y in batches:
        x = x.to(device)
        with autocast(device, amp):
            p_s = _probs(student, x, views)
        pred = p_s.argmax(-1).cpu()
        confusion += torch.bincount(y * k + pred, minlength=k * k).view(k, k)
        if teacher is not None:
            with autocast(device, amp):
                p_t = _probs(teacher, x, views)
            agree += int((p_t.argmax(-1) == p_s.argmax(-1)).sum())
            kl += float((p_t * (p_t.clamp_min(1e-12).log() - p_s.clamp_min(1e-12).log())).sum(-1).sum())
            n += x.shape[0]
    student.train(was)
    counts = confusion.sum(1)
    out: dict[str, Any] = {"per_class": {
        name: {"top1": 100.0 * int(confusion[i, i]) / max(int(counts[i]), 1), "n": int(counts[i])}
        for i, name in enumerate(classes)}}
    if teacher is not None and n:
        out["agreement"] = {"top1": 100.0 * agree / n, "kl": kl / n, "n": n}
    if png is not None:
        plot_confusion(confusion, classes, png)
        out["confusion_png"] = png.name
    return out


def plot_confusion(confusion: torch.Tensor, classes: list[str], path: Path) -> Path:
    """Row-normalised confusion matrix as a PNG, with class names on both axes (for up to 40 classes)."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(classes)
    rates = confusion.float() / confusion.sum(1, keepdim=True).clamp_min(1)
    side = min(4 + 0.35 * k, 24)
    fig, ax = plt.subplots(figsize=(side, side))
    im = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    if k <= MAX_LABELLED:
        ax.set_xticks(range(k), classes, rotation=90)
        ax.set_yticks(range(k), classes)
        if k <= 15:
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if rates[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted class", ylabel="true class", title="confusion (rows sum to 1)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return save_figure(fig, path)
