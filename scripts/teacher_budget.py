"""Teacher training variants of a recipe, each measured in test accuracy and in CPU seconds of one thread.

    python scripts/teacher_budget.py recipes/fashion-mnist.toml \\
        base= lr1e-2=teacher.fit.lr=1e-2 "d2e1=teacher.kwargs.depth=2,teacher.fit.epochs=1"

Each argument after the recipe is ``NAME=OVERRIDE[,OVERRIDE...]`` (``NAME=`` alone: the recipe as it is). Every
variant trains through ``aip.teacher.fit_teacher`` (what ``aip teacher`` runs) in a fresh process with one torch
thread and ``eval.workers = 0``, so the whole training runs on the thread whose CPU time is measured: CPU seconds
are a fairer cost than wall time on a machine shared with other work (they still rise some under contention:
caches and memory bandwidth are shared). ``teacher.fit.min_steps = 0`` unless a variant sets it, so an epoch
count means what it says. Prints one JSON line a variant and a Markdown table; the teachers are written to a
scratch folder, not to aip's cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ONE = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
from pathlib import Path
from aip import checkpoint
from aip.recipe import load
from aip.registry import load_modality
from aip.teacher import fit_teacher
recipe_path, out, sets = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
r = load(recipe_path, overrides=["eval.workers=0", "teacher.fit.min_steps=0", *sets])
c0 = time.thread_time()
fit_teacher(r, load_modality(r.modality), device=torch.device("cpu"), path=out)
cpu = time.thread_time() - c0
_, meta = checkpoint.load_weights(out)
print(json.dumps({"top1": meta["test"]["top1"], "cpu_s": round(cpu, 1), "epochs": meta["epochs"]}))
"""


def main(argv: list[str]) -> int:
    if len(argv) < 2 or any("=" not in a for a in argv[1:]):
        print(__doc__, file=sys.stderr)
        return 2
    recipe, rows = argv[0], []
    with tempfile.TemporaryDirectory() as scratch:
        for arg in argv[1:]:
            name, _, sets = arg.partition("=")
            overrides = [s for s in sets.split(",") if s]
            out = Path(scratch) / f"{name}.safetensors"
            proc = subprocess.run([sys.executable, "-c", ONE, recipe, str(out), *overrides],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{name}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                return 1
            row = {"name": name, "overrides": overrides, **json.loads(proc.stdout.strip().splitlines()[-1])}
            print(json.dumps(row), flush=True)
            rows.append(row)
    base = rows[0]["cpu_s"]
    print("\n| variant | overrides | epochs | teacher top-1 | CPU s (1 thread) | cost vs first |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {' '.join(r['overrides']) or '(the recipe)'} | {r['epochs']} | {r['top1']:.2f} % | "
              f"{r['cpu_s']:.0f} | {r['cpu_s'] / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
