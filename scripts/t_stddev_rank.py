"""Rank correlation between T. stddev (``aip source-stats``' ``teacher_t_stddev``) and the measured student accuracy
over the variants of finished sweeps (docs/analyses.md, "Does T. stddev predict the student?").

    python scripts/t_stddev_rank.py docs/analyses/source-fashion-mnist docs/analyses/augment-fashion-mnist

For each variant (run folders ``NAME_seed-N``): the mean student top-1 over its seeds, and T. stddev of the
variant's resolved recipe (its ``recipe.toml``; teacher forwards only, over ``--views`` views drawn with the
recipe's seed). Variants that differ only in ``train.view_select`` / ``train.view_pool`` are skipped: T. stddev
is measured on the views before selection, so they would all get the same value. Prints a table and, per
sweep, Spearman's rho and its p-value (scipy), as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch
from scipy.stats import spearmanr

from aip import recipe as R
from aip.source_stats import source_stats


def variants(folder: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for run in sorted(p for p in folder.iterdir() if (p / "metrics.json").exists()):
        out.setdefault(re.sub(r"_seed-\d+$", "", run.name), []).append(run)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweeps", nargs="+", type=Path)
    ap.add_argument("--views", type=int, default=4096)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result = {}
    for folder in args.sweeps:
        rows = []
        base = None
        for name, runs in variants(folder).items():
            recipe = R.load(runs[0] / "recipe.toml")
            key = {k: v for k, v in recipe.to_dict()["train"].items() if k not in ("seed",)}
            if base is None:
                base = key
            if key != base and {k for k in key if key[k] != base.get(k)} <= {"view_select", "view_pool"}:
                print(f"{folder.name}: {name} skipped (differs only in view selection)")
                continue
            top1 = [json.loads((r / "metrics.json").read_text())["student"]["top1"] for r in runs]
            stats = source_stats(recipe, device=torch.device("cpu"), views=args.views)
            rows.append({"variant": name, "seeds": len(top1), "top1": sum(top1) / len(top1),
                         "t_stddev": stats["teacher_t_stddev"]})
            print(f"{folder.name}: {name:28s} top1 {rows[-1]['top1']:6.2f} % ({len(top1)} seeds)  "
                  f"T. stddev {rows[-1]['t_stddev']:.5f}", flush=True)
        rho, p = spearmanr([r["t_stddev"] for r in rows], [r["top1"] for r in rows])
        print(f"{folder.name}: Spearman rho(T. stddev, student top-1) = {rho:.3f} (p = {p:.3f}, {len(rows)} variants)")
        result[folder.name] = {"rows": rows, "spearman_rho": float(rho), "p_value": float(p), "views": args.views}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
