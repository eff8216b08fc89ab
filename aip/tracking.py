"""Training scalars of a run: ``steps.jsonl`` in the run directory always, and the trackers ``train.log`` names.

``steps.jsonl`` holds one JSON object per logged step, ``{"step": N, "loss": ..., "lr": ...}``, and evaluations
as ``{"step": N, "eval": {...}}``. Non-finite numbers are written as ``null`` so every line is valid JSON
(:func:`aip.state.json_safe`). A resumed run drops the lines past the step it resumes from, so the file never
holds two histories. ``train.log`` adds trackers (:mod:`aip.trackers`: ``tensorboard``, ``wandb``, ``mlflow``,
``csv``): each gets the step scalars as ``train/NAME``, the evaluations as ``eval/NAME`` with the training
epoch's mean loss as ``train/epoch_loss``, and, from :meth:`Tracker.finish`, the recipe's hyper-parameters
(:func:`flatten`), the final metrics and the confusion matrix.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aip import files
from aip.errors import UsageError
from aip.rundir import RunDir
from aip.state import json_safe
from aip.trackers import BACKENDS, Backend, open_backend, read_ids, save_id

if TYPE_CHECKING:
    from aip.recipe import Recipe

STEPS_FILE = RunDir.STEPS

__all__ = ["BACKENDS", "STEPS_FILE", "Tracker", "flatten", "read_steps"]


def read_steps(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``steps.jsonl``; a torn last line (a crash mid-write) is skipped."""
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict (a resolved recipe) as one level of dotted keys: ``{"train": {"lr": 0.1}}`` gives
    ``{"train.lr": 0.1}``; lists and other values are kept as they are."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class Tracker:
    """Writes the training scalars of one run; ``enabled=False`` (other ranks) makes every call a no-op.

    It is open from its construction at ``start_step`` (the step a resumed run continues from), or, with
    ``start_step=None``, from :meth:`open`: :func:`aip.run.run` makes it before :func:`aip.trainer.fit` knows the
    resume point, so that the same trackers get the final metrics after it. ``hparams`` (a flat dict, see
    :func:`flatten`) go to wandb's config and MLflow's params when they open, and to TensorBoard's HParams at the
    end; ``name`` names the wandb and MLflow run."""

    def __init__(self, run_dir: Path, *, backends: Sequence[str] = (), start_step: int | None = 0,
                 enabled: bool = True, hparams: dict[str, Any] | None = None, name: str = "run") -> None:
        self.dir, self.path = Path(run_dir), Path(run_dir) / STEPS_FILE
        self.enabled, self.names, self.hparams, self.name = enabled, list(backends), dict(hparams or {}), name
        self.backends: list[Backend] = []
        self.is_open, self.finished = False, False
        for backend in self.names:
            if backend not in BACKENDS:
                raise UsageError(f"unknown tracking backend {backend!r} in train.log; known: {', '.join(BACKENDS)}")
        if start_step is not None:
            self.open(start_step=start_step)

    @classmethod
    def of(cls, recipe: Recipe, run_dir: Path, *, enabled: bool, start_step: int | None = None) -> Tracker:
        """The trackers of a run of ``recipe`` (``train.log``, its flattened recipe, its name)."""
        return cls(run_dir, backends=recipe.train.log, start_step=start_step, enabled=enabled,
                   hparams=flatten(recipe.to_dict()), name=recipe.name)

    def open(self, *, start_step: int) -> Tracker:
        """Start logging at ``start_step``: drop what ``steps.jsonl`` holds past it, open the backends. A second
        call does nothing."""
        if not self.enabled or self.is_open:
            return self
        self.is_open = True
        kept = [r for r in read_steps(self.path) if r.get("step", 0) <= start_step]
        files.write_text("".join(json.dumps(r) + "\n" for r in kept), self.path)
        try:
            for backend in self.names:
                self.backends.append(open_backend(backend, run_dir=self.dir, start_step=start_step,
                                                  hparams=self.hparams, run_name=self.name))
        except BaseException:
            self.close()
            raise
        return self

    def _append(self, row: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(json_safe(row), allow_nan=False) + "\n")

    def _send(self, step: int, values: dict[str, Any]) -> None:
        finite = {k: float(v) for k, v in json_safe(values).items() if isinstance(v, int | float)}
        for backend in self.backends:
            backend.scalars(step, finite)

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        """One training step's scalars (loss, lr, samples/s, data share, ...)."""
        if not self.is_open:
            return
        self._append({"step": int(step), **scalars})
        self._send(int(step), {f"train/{k}": v for k, v in scalars.items()})

    def log_eval(self, step: int, metrics: dict[str, float], *, train_loss_epoch: float | None = None) -> None:
        """One evaluation's metrics (top1, top5, ...), as ``{"step": N, "eval": {...}}``; the trackers also get
        the training epoch's mean loss so far as ``train/epoch_loss`` (it is no test loss: the test split has
        no loss of the student's training objective)."""
        if not self.is_open:
            return
        self._append({"step": int(step), "eval": dict(metrics)})
        extra = {} if train_loss_epoch is None else {"train/epoch_loss": train_loss_epoch}
        self._send(int(step), {**{f"eval/{k}": v for k, v in metrics.items()}, **extra})

    def finish(self, final: dict[str, Any], *, step: int, image: Path | None = None) -> None:
        """At the end of the run: the final metrics (``final/top1``, ...) with the hyper-parameters, and the
        confusion matrix PNG ``image``, to the trackers that take them. A finished run run again (nothing left
        to train) does not log its end a second time."""
        if not self.is_open:
            return
        self.finished = True
        if not self.backends or read_ids(self.dir).get("finished_step") == int(step):
            return
        metrics = {k: float(v) for k, v in json_safe(final).items() if isinstance(v, int | float)}
        image = image if image is not None and Path(image).is_file() else None
        for backend in self.backends:
            backend.finish(step=int(step), hparams=self.hparams, final=metrics, image=image)
        save_id(self.dir, "finished_step", int(step))

    def close(self) -> None:
        backends, self.backends = self.backends, []
        for backend in backends:
            backend.close(finished=self.finished)
        self.is_open = False

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
