"""PNG plot of a run's curves (distillation loss and test accuracy per evaluated epoch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curves(history: list[dict[str, Any]], path: Path, *, title: str, teacher_top1: float | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [row["loss"] for row in history], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="distillation loss", title="training loss")
    ax_acc.plot(epochs, [row["top1"] for row in history], marker="o", label="student top-1")
    if teacher_top1 is not None:
        ax_acc.axhline(teacher_top1, color="gray", linestyle="--", label="teacher top-1")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="student on the real test set")
    ax_acc.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
