"""The single datum (one long synthetic signal) and the sampler that cuts batches of windows from it.

Frequencies are in cycles per sample. Both source kinds cover the whole range ``[F_LO, F_HI]`` that the
labelled dataset's bands span (see :mod:`aip_toy.data`), so the teacher sees every class somewhere in the
signal: the 1-D analogue of a photo rich in edges and textures.
"""

from __future__ import annotations

import numpy as np
import torch

from aip_toy.config import ToySourceConfig

#: lowest and highest frequency (cycles per sample) of the source and of the dataset's bands
F_LO, F_HI = 0.012, 0.45


def _smooth_noise(rng: np.random.Generator, length: int, every: int) -> np.ndarray:
    """Standard-normal values every ``every`` samples, linearly interpolated to ``length`` samples."""
    knots = rng.standard_normal(length // every + 2)
    return np.interp(np.arange(length) / every, np.arange(knots.size), knots)


def make_signal(cfg: ToySourceConfig) -> torch.Tensor:
    """The source signal: ``(length,)`` float32, zero mean and unit standard deviation, from ``cfg.seed``."""
    rng = np.random.default_rng(cfg.seed)
    n = cfg.length
    t = np.arange(n, dtype=np.float64)
    if cfg.kind == "sines":
        out = np.zeros(n)
        freqs = np.geomspace(F_LO, F_HI, cfg.components) * np.exp(rng.uniform(-0.1, 0.1, cfg.components))
        for f in freqs:  # one component at a time: memory stays O(length)
            envelope = np.exp(1.5 * _smooth_noise(rng, n, every=2 * cfg.window))
            out += envelope * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    else:  # random_walk: the log-frequency of one oscillation walks, reflected into [log F_LO, log F_HI]
        lo, hi = np.log(F_LO), np.log(F_HI)
        walk = np.cumsum(rng.standard_normal(n)) / np.sqrt(64 * cfg.window)  # ~0.13 of the range per window
        u = np.abs(np.mod(walk + rng.uniform(0, 2), 2.0) - 1.0)  # reflected into [0, 1]
        freq = np.exp(lo + u * (hi - lo))
        amplitude = np.exp(0.5 * _smooth_noise(rng, n, every=4 * cfg.window))
        out = amplitude * np.sin(2 * np.pi * np.cumsum(freq))
    out = (out - out.mean()) / (out.std() + 1e-12)
    out += cfg.noise * rng.standard_normal(n)
    return torch.from_numpy(out.astype(np.float32))


class WindowSampler:
    """Random windows of the one signal: ``sample(B)`` -> ``(B, 1, window)`` float32 on ``device``.

    Start positions come from torch's global RNG (on ``device``), which the trainer seeds and checkpoints,
    so a resumed run continues the same stream of windows.
    """

    def __init__(self, signal: torch.Tensor, *, window: int, device: torch.device) -> None:
        self.signal = signal.to(device)
        self.window = window
        self.device = device
        self.offsets = torch.arange(window, device=device)

    @torch.no_grad()
    def sample(self, batch_size: int) -> torch.Tensor:
        starts = torch.randint(0, self.signal.numel() - self.window + 1, (batch_size,), device=self.device)
        return self.signal[starts[:, None] + self.offsets].unsqueeze(1)  # (B, 1, W)
