"""Cost of each clip-generator option of ``[source]`` against the paper's linear pan (``ClipSampler.sample``).

    OMP_NUM_THREADS=1 python scripts/bench_clips.py --recipe recipes/motion.toml --batch 64

Uses the recipe's ``[source]`` with its augmentation's crop and flip folded in, as training does. Calls of the
default sampler and of the option's alternate, and the ratio is the median over those pairs, so a machine whose
load changes during the run still gives comparable ratios (the process's CPU time is measured, not wall
clock). Figures, not pass/fail: copy them with the date and the machine into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from aip import recipe as recipes
from modalities.video.augment import crop_scale
from modalities.video.source import ClipSampler, load_source

OPTIONS = {
    'path = "curved"': {"path": "curved"},
    "rotate = 30": {"rotate": 30.0},
    "sprites = 1": {"sprites": 1},
    "sprites = 3": {"sprites": 3},
    'sprites = 3, sprite_shape = "box"': {"sprites": 3, "sprite_shape": "box"},
    "photometric = 0.3": {"photometric": 0.3},
    "occlusion_p = 0.5": {"occlusion_p": 0.5},
    "all five (curved, rotate 30, sprites 3, photometric 0.3, occlusion_p 0.5)":
        {"path": "curved", "rotate": 30.0, "sprites": 3, "photometric": 0.3, "occlusion_p": 0.5},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="recipes/motion.toml")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--pairs", type=int, default=40)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    rec = recipes.load(args.recipe)
    lo, hi = crop_scale(rec.augment, rec.source.size)
    source = load_source(rec.source)

    def sampler(options: dict) -> ClipSampler:
        cfg = dataclasses.replace(rec.source, **options)
        return ClipSampler(source, cfg, device=device, crop=(lo, hi) if lo < 1 else None,
                           crop_hflip=rec.augment.hflip)

    def seconds(s: ClipSampler) -> float:
        start = time.process_time() if device.type == "cpu" else time.perf_counter()
        s.sample(args.batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.process_time() if device.type == "cpu" else time.perf_counter()) - start

    default = sampler({})
    for _ in range(5):
        seconds(default)
    src = rec.source
    print(f"{args.recipe}: sample({args.batch}) of {src.frames} x {src.size} px clips, {torch.get_num_threads()} "
          f"thread(s), {args.device}")
    print("| option | ms per batch | x the paper's pan |\n|---|---|---|")
    base = []
    for name, options in OPTIONS.items():
        s = sampler(options)
        for _ in range(3):
            seconds(s)
        pairs = [(seconds(default), seconds(s)) for _ in range(args.pairs)]
        base += [a for a, _ in pairs]
        ratio = statistics.median(b / a for a, b in pairs)
        print(f"| `{name}` | {statistics.median(b for _, b in pairs) * 1e3:.1f} | {ratio:.2f} |", flush=True)
    print(f"| default (the paper's pan) | {statistics.median(base) * 1e3:.1f} | 1.00 |")


if __name__ == "__main__":
    main()
