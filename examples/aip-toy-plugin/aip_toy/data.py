"""The labelled toy datasets: synthetic windows whose class is the band of their dominant frequency.

Nothing is read from disk or downloaded: each split is generated from a fixed seed, so ``train`` and
``test`` are the same on every machine and in every process (the core caches teachers by dataset name and
input shape, so a dataset must be a function of those alone). An item is one dominant sinusoid (amplitude 1)
with a frequency in its class's band, two weaker distractors (amplitude below 0.5) anywhere in the range,
Gaussian noise and a random gain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from aip.plugin import LabelledData, Registry
from aip_toy.signals import F_HI, F_LO


@dataclass(frozen=True)
class BandsSpec:
    """A dataset's facts: ``num_classes`` log-spaced bands over ``[F_LO, F_HI]``, the size of each split."""

    num_classes: int
    train_size: int
    test_size: int
    description: str

    def edges(self) -> np.ndarray:
        return np.geomspace(F_LO, F_HI, self.num_classes + 1)

    def classes(self) -> list[str]:
        e = self.edges()
        return [f"{lo:.3f}-{hi:.3f} cycles/sample" for lo, hi in zip(e[:-1], e[1:], strict=True)]


DATASETS: Registry[BandsSpec] = Registry("toy dataset")
DATASETS.register("bands")(BandsSpec(4, 2048, 1024, "4 frequency bands"))
DATASETS.register("bands8")(BandsSpec(8, 4096, 2048, "8 frequency bands (harder)"))

_SPLIT_SEED = {"train": 1, "test": 2}


class Windows(Dataset):
    """Items ``(window (C, W) float32, label int)``; with ``train=True`` each read is lightly augmented."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, train: bool = False) -> None:
        self.x, self.y, self.train = x, y, train

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.x[i]
        if self.train:  # light augmentation for teacher training: reverse time, small noise
            if torch.rand(()) < 0.5:
                x = x.flip(-1)
            x = x + 0.05 * x.std() * torch.randn_like(x)
        return x, int(self.y[i])


def generate(spec: BandsSpec, *, split: str, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x (N, 1, window) float32, y (N,) int64)`` for ``split``, deterministic, balanced over classes."""
    n = spec.train_size if split == "train" else spec.test_size
    rng = np.random.default_rng([_SPLIT_SEED[split], spec.num_classes, window])
    y = np.arange(n) % spec.num_classes
    rng.shuffle(y)
    log_edges = np.log(spec.edges())
    margin = 0.05 * (log_edges[1] - log_edges[0])  # keep the dominant tone off the band edges
    f0 = np.exp(rng.uniform(log_edges[y] + margin, log_edges[y + 1] - margin))
    f_other = np.exp(rng.uniform(np.log(F_LO), np.log(F_HI), (n, 2)))
    freqs = np.concatenate([f0[:, None], f_other], axis=1)  # (N, 3)
    amps = np.concatenate([np.ones((n, 1)), rng.uniform(0.0, 0.5, (n, 2))], axis=1)
    phases = rng.uniform(0, 2 * np.pi, (n, 3))
    t = np.arange(window)
    x = (amps[..., None] * np.sin(2 * np.pi * freqs[..., None] * t + phases[..., None])).sum(1)  # (N, W)
    x += rng.uniform(0.0, 0.3, (n, 1)) * rng.standard_normal((n, window))
    x *= np.exp(rng.uniform(np.log(0.5), np.log(2.0), (n, 1)))
    return torch.from_numpy(x[:, None].astype(np.float32)), torch.from_numpy(y.astype(np.int64))


def load(name: str, *, split: str, window: int, train: bool = False) -> LabelledData:
    """The labelled ``split`` (``"train"`` or ``"test"``) of dataset ``name`` at window length ``window``."""
    spec = DATASETS.get(name)  # unknown name -> AipError listing the known ones
    x, y = generate(spec, split=split, window=window)
    return LabelledData(Windows(x, y, train=train), num_classes=spec.num_classes, classes=spec.classes())
