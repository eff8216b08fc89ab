"""Per-step scalars of a run, written to ``steps.jsonl`` in the run directory."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from aip.state import json_safe


class Tracker:
    """Appends ``{"step": N, **scalars}`` lines to ``run_dir/steps.jsonl``; rows past ``start_step`` (left by
    an interrupted run) are dropped first, so a resumed run continues the file cleanly."""

    def __init__(self, run_dir: Path, *, backends: Sequence[str] = (), start_step: int = 0,
                 enabled: bool = True) -> None:
        self.path = Path(run_dir) / "steps.jsonl"
        self.enabled = enabled
        if enabled and self.path.exists():
            rows = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= start_step]
            self.path.write_text("".join(r + "\n" for r in rows))

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(json_safe({"step": step, **scalars})) + "\n")

    def log_eval(self, step: int, metrics: dict[str, float]) -> None:
        """Evaluations are in ``metrics.jsonl`` already."""

    def close(self) -> None:
        """Nothing held open."""
