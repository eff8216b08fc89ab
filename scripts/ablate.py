"""Run a list of recipe variants one after another and print a Markdown table of their results.

Each variant is the base recipe plus ``--set`` overrides, run through the real CLI (``aip run``), so every
row of the table is reproduced by the command printed beside it. Example:

    python scripts/ablate.py recipes/fashion-mnist.toml --out runs/ablation \
        --variant "default=" --variant "T=4=loss.temperature=4" --variant "noise=source.uri='synthetic:noise'"

A variant is ``LABEL=OVERRIDE;OVERRIDE;...`` (an empty override list is the recipe as it is).
``--common`` overrides apply to every variant (e.g. a shorter schedule for a quick ablation).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipe")
    p.add_argument("--out", required=True, help="folder for one run directory per variant")
    p.add_argument("--variant", action="append", default=[], help="LABEL=OVERRIDE;OVERRIDE")
    p.add_argument("--common", action="append", default=[], help="override applied to every variant")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in args.variant:
        label, _, rest = spec.partition("=")
        overrides = [*args.common, *(o for o in rest.split(";") if o)]
        run_dir = out / label.replace(" ", "_").replace("/", "_")
        cmd = ["aip", "run", args.recipe, "--out", str(run_dir), "--device", args.device]
        for o in overrides:
            cmd += ["--set", o]
        print("$", shlex.join(cmd), flush=True)
        r = subprocess.run([sys.executable, "-m", "aip", *cmd[1:]], stdout=subprocess.DEVNULL)
        if r.returncode != 0 or not (run_dir / "metrics.json").exists():
            rows.append((label, None, cmd))
            continue
        rows.append((label, json.loads((run_dir / "metrics.json").read_text()), cmd))
        print(f"  {label}: student {rows[-1][1]['student']['top1']:.2f} %", flush=True)
    print("\n| variant | teacher top-1 | student top-1 | student/teacher | train min | command |")
    print("|---|---|---|---|---|---|")
    for label, m, cmd in rows:
        overrides = " ".join(f"--set {shlex.quote(c)}" for c in cmd[cmd.index("--device") + 2 :][1::2])
        if m is None:
            print(f"| {label} | failed | | | | `{overrides}` |")
            continue
        print(f"| {label} | {m['teacher']['top1']:.2f} | {m['student']['top1']:.2f} | {100 * m['ratio']:.1f} % "
              f"| {m['train_seconds'] / 60:.1f} | `{overrides}` |")


if __name__ == "__main__":
    main()
