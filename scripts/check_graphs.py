"""On a CUDA device: is each recipe's data path captured into a CUDA graph, are its replays the batches the
eager path makes from the same seed, and how long does a batch take each way?

    python scripts/check_graphs.py [RECIPE ...]

For each recipe (its `source.uri` replaced by a bundled photo or synthetic noise, as `aip bench` is run in
scripts/gpu_check.sh), builds the modality's sampler and augmenter for CUDA as `aip run` does and prints: whether
the graph was captured (or why not), the largest difference between the first two replayed batches and the
first two eager batches from the same seed, whether consecutive replays differ, and milliseconds per batch
replayed and eager. Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import time

import torch

from aip import recipe as recipes
from aip.hardware import Policy
from aip.registry import load_modality
from aip.trainer import data_path

SOURCES = {"image": "skimage:astronaut", "video": "skimage:astronaut", "audio": "synthetic:noise"}
DEFAULT = ["recipes/cifar10.toml", "recipes/imagenet.toml", "recipes/kinetics400.toml",
           "recipes/spoken-keywords.toml", "recipes/speechcommands.toml"]


def per_batch(fn, device: torch.device, repeats: int = 20) -> float:
    fn()
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*", default=DEFAULT)
    p.add_argument("--profile", nargs="*", default=[], metavar="NAME",
                   help="after the table, profile 3 eager batches of these recipes (by name) on the GPU")
    args = p.parse_args()
    kept = {}
    device = torch.device("cuda")
    print(f"# {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    print("| recipe | batch | captured | replay vs eager, same seed: max abs diff | replays differ | "
          "ms per batch replayed | ms per batch eager |")
    print("|---|---|---|---|---|---|---|")
    for path in args.recipes:
        rec = recipes.load(path, [])
        rec = recipes.load(path, [f"source.uri={SOURCES[rec.modality]}"])
        modality = load_modality(rec.modality)
        policy = Policy.of(rec, device)
        policy.tune()  # cuDNN autotuning and TF32, as aip run and aip bench set them
        sampler, augmenter = modality.sampler(rec, device=device), modality.augmenter(rec, device=device)
        data = data_path(rec, sampler, augmenter, policy=policy)
        torch.manual_seed(0)
        torch.cuda.manual_seed(0)
        g1 = data().clone()  # a replayed batch lives in the graph's output, which the next replay overwrites
        g2 = data().clone()
        torch.manual_seed(0)
        torch.cuda.manual_seed(0)
        e1, e2 = data.make(), data.make()
        diff = max((g1 - e1).abs().max().item(), (g2 - e2).abs().max().item())
        differ = (g1 - g2).abs().max().item()
        replay = per_batch(data, device) if data.active else float("nan")
        eager = per_batch(data.make, device)
        state = "yes" if data.active else f"no ({data.error or 'not marked capturable'})"
        print(f"| {rec.name} | {g1.shape[0]} | {state} | {diff:.3g} | {differ:.3g} | {replay:.2f} | {eager:.2f} |",
              flush=True)
        if rec.name in args.profile:
            kept[rec.name] = data.make
        del data, sampler, augmenter, g1, g2, e1, e2
        torch.cuda.empty_cache()
    for name, make in kept.items():
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                make()
            torch.cuda.synchronize(device)
        print(f"\n# {name}: 3 eager batches, ops by own GPU time")
        print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=12))


if __name__ == "__main__":
    main()
