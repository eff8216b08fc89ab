"""Throughput of the image view generator (source sampler + training augmentation), per batch size and view size.

    python scripts/bench_views.py --device cpu --sizes 28 32 224 --batch 256

Prints views/s for the sampler alone, the augmenter alone and both together. Figures, not pass/fail: copy
them with the date and the machine into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from modalities.image.augment import ImageAugmenter
from modalities.image.config import ImageAugmentConfig, ImageSourceConfig
from modalities.image.source import ImageViewSampler, load_image


def timed(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", type=int, nargs="+", default=[28, 32, 224])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--source", default="skimage:astronaut")
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}, batch {args.batch}")
    print("| view size | channels | sampler views/s | augmenter views/s | both views/s |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        channels = 1 if size == 28 else 3
        src = ImageSourceConfig(uri=args.source, size=size, channels=channels)
        acfg = ImageAugmentConfig(crop="rrc" if size >= 64 else "pad")
        # as the image modality builds them: the augmentation's crop and flip folded into the sampler
        sampler = ImageViewSampler(load_image(src), src, device=device, crop=acfg)
        aug = ImageAugmenter(acfg, size=size, channels=channels, geometry=False).to(device)
        views = sampler.sample(args.batch)
        t_s = timed(lambda s=sampler: s.sample(args.batch), args.repeats, device)
        t_a = timed(lambda a=aug, v=views: a(v), args.repeats, device)
        t_b = timed(lambda s=sampler, a=aug: a(s.sample(args.batch)), args.repeats, device)
        n = args.batch
        print(f"| {size} | {channels} | {n / t_s:,.0f} | {n / t_a:,.0f} | {n / t_b:,.0f} |")


if __name__ == "__main__":
    main()
