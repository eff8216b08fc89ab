"""The notebook entry point: :func:`distil` runs a recipe and hands back the student and its metrics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from aip.recipe import Recipe, apply_overrides, from_dict, load
from aip.student import Student, load_student


def distil(recipe: str | Path | Recipe, *, overrides: list[str] | None = None,
           device: str | torch.device = "auto", out: str | Path | None = None,
           stop_after_epochs: int | None = None, progress: bool = True) -> tuple[Student, dict[str, Any]]:
    """Distil ``recipe`` (a TOML path or a :class:`~aip.recipe.Recipe`) as ``aip run`` does; returns the final
    student (eval mode, on ``device``) and what ``metrics.json`` holds.

    ``overrides`` are ``--set`` strings (``["train.epochs=2"]``); ``device`` is ``"auto"``, ``"cpu"``,
    ``"cuda"``, ``"cuda:N"`` or a ``torch.device``; ``out`` is the run directory (default ``runs/NAME``, where
    a second call resumes or reuses the finished run); ``progress=False`` draws no progress bars (teacher
    training, distillation, evaluation), for a notebook or a log; the lines a run prints stay.

    Example:
        >>> student, metrics = aip.distil("recipes/fashion-mnist.toml", overrides=["train.epochs=1"], device="cpu")
        >>> metrics["student"]["top1"], student.predict("shirt.png").labels[0]
    """
    from aip import distributed
    from aip.hardware import resolve_device
    from aip.run import default_run_dir, run

    overrides = list(overrides or [])
    if isinstance(recipe, Recipe):
        r = from_dict(apply_overrides(recipe.to_dict(), overrides)) if overrides else recipe
        run_dir = Path(out) if out is not None else default_run_dir(r.name, overrides)
    else:
        r = load(recipe, overrides)
        run_dir = Path(out) if out is not None else default_run_dir(recipe, overrides)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    with distributed.session(dev) as dev, (nullcontext() if progress else _no_progress_bars()):
        metrics = run(r, out=run_dir, device=dev, stop_after_epochs=stop_after_epochs)
    return load_student(run_dir, device=dev, which="last.pt"), metrics


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """No progress bar inside the block: every bar of aip comes from :mod:`aip.progress`, which reads
    ``AIP_PROGRESS`` at each bar's start; ``tqdm.write`` lines still print."""
    import os

    before = os.environ.get("AIP_PROGRESS")
    os.environ["AIP_PROGRESS"] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("AIP_PROGRESS", None)
        else:
            os.environ["AIP_PROGRESS"] = before
