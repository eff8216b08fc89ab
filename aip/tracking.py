"""Per-step training scalars in the run directory: ``steps.jsonl`` always, TensorBoard on request.

``steps.jsonl`` holds one JSON object per logged step, ``{"step": N, "loss": ..., "lr": ...}``, and evaluations
as ``{"step": N, "eval": {...}}``. Non-finite numbers are written as ``null`` so every line is valid JSON. A
resumed run drops the lines past the step it resumes from, so the file never holds two histories.
``train.log = ["tensorboard"]`` also writes every scalar through ``torch.utils.tensorboard`` into ``tb/``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aip import files
from aip.errors import AipError

BACKENDS = ("tensorboard",)
STEPS_FILE = "steps.jsonl"


def _finite(value: Any) -> Any:
    """``value`` as plain JSON: floats that are NaN or infinite become ``None``."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if hasattr(value, "item"):  # a 0-d tensor or numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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


class Tracker:
    """Writes training scalars of one run; ``enabled=False`` (other ranks) makes every call a no-op."""

    def __init__(self, run_dir: Path, *, backends: Sequence[str] = (), start_step: int = 0,
                 enabled: bool = True) -> None:
        self.path = Path(run_dir) / STEPS_FILE
        self.enabled = enabled
        self._tb: Any = None
        for name in backends:
            if name not in BACKENDS:
                raise AipError(f"unknown tracking backend {name!r} in train.log; known: {', '.join(BACKENDS)}")
        if not enabled:
            return
        kept = [r for r in read_steps(self.path) if r.get("step", 0) <= start_step]
        files.write_text("".join(json.dumps(r) + "\n" for r in kept), self.path)
        if "tensorboard" in backends:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise AipError("train.log = ['tensorboard'] needs the tensorboard package; "
                               "pip install 'aip[tensorboard]'") from None
            # purge_step drops events past the resume point, as steps.jsonl does
            self._tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=start_step + 1 if start_step else None)

    def _append(self, row: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(_finite(row), allow_nan=False) + "\n")

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        """One training step's scalars (loss, lr, samples/s, data share, ...)."""
        if not self.enabled:
            return
        self._append({"step": int(step), **scalars})
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(f"train/{k}", float(v), int(step))

    def log_eval(self, step: int, metrics: dict[str, float]) -> None:
        """One evaluation's metrics (top1, top5, ...), as ``{"step": N, "eval": {...}}``."""
        if not self.enabled:
            return
        self._append({"step": int(step), "eval": dict(metrics)})
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(f"eval/{k}", float(v), int(step))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
