"""The state of a run between steps: how far it is, what it measured, how long it took.

It is saved into ``last.pt`` with the weights, optimiser, scheduler and RNG states, and restored from it, so
a resumed run continues where the saved one stopped. It holds only primitive values (numbers, strings,
lists, dicts), so checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RunState:
    """``step``: optimiser steps done. ``best``/``final``: the best and the latest evaluation (``{"top1",
    "top5", ..., "epoch"}``). ``history``: one row per evaluation. ``seconds``: training time so far (without
    evaluations); ``eval_seconds``: time spent evaluating. ``epoch_loss``/``epoch_steps``: the current epoch's
    loss sum, so an epoch interrupted half-way reports the same mean loss when it is finished after resume."""

    step: int = 0
    best: dict[str, float] = field(default_factory=lambda: {"top1": -1.0})
    final: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    eval_seconds: float = 0.0
    epoch_loss: float = 0.0
    epoch_steps: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        """From :meth:`to_dict`, or from the top-level keys of a checkpoint written before ``RunState``. History
        rows of older runs name the training epoch's mean loss ``loss``; they are read as ``train_loss_epoch``."""
        known = {f for f in cls.__dataclass_fields__}
        state = cls(**{k: v for k, v in data.items() if k in known})
        state.history = [_renamed(row) for row in state.history]
        return state

    def record(self, row: dict[str, Any]) -> bool:
        """Add an evaluation row (``{"epoch", "top1", ...}``); return whether it is the best so far."""
        self.history.append(row)
        metrics = {k: v for k, v in row.items() if k not in ("train_loss_epoch", "loss", "lr", "seconds", "step")}
        self.final = metrics
        if row["top1"] > self.best["top1"]:
            self.best = metrics
            return True
        return False


def train_loss_epoch(row: dict[str, Any]) -> float | None:
    """The training epoch's mean distillation loss of a ``metrics.jsonl`` row, also from runs that called it
    ``loss`` (it is no test loss)."""
    return row.get("train_loss_epoch", row.get("loss"))


def _renamed(row: dict[str, Any]) -> dict[str, Any]:
    if "loss" not in row or "train_loss_epoch" in row:
        return row
    return {("train_loss_epoch" if k == "loss" else k): v for k, v in row.items()}


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats replaced by ``None``, so ``json.dumps`` writes valid JSON; 0-d tensors
    and numpy scalars become plain numbers first. The one non-finite-to-None of aip (metrics.jsonl, steps.jsonl,
    the trackers)."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a 0-d tensor or numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
