"""Figures: PNG files written atomically, and the plot of a run's curves (distillation loss and test accuracy
per evaluated epoch)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from aip import files


def save_figure(fig: Any, path: Path, *, dpi: int = 100) -> Path:
    """Write a matplotlib figure to the PNG ``path`` atomically (:mod:`aip.files`) and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    files.write_bytes(buf.getvalue(), path)
    return path


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
    return save_figure(fig, path)
