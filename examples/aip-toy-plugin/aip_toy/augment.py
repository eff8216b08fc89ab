"""Training-time augmentation of windows: random gain, circular time shift, time reversal, additive noise,
then CutMix along time. Batched, on the windows' device, with independent random parameters per sample.

None of these moves a window's dominant frequency, so the teacher's label for an augmented window stays
meaningful; what they change (amplitude, phase, direction, noise, a pasted segment) is what the student must
learn to ignore, or, for CutMix, to weigh as the teacher does.
"""

from __future__ import annotations

import math

import torch

from aip.plugin import cutmix
from aip_toy.config import ToyAugmentConfig


class SignalAugmenter:
    """``windows (B, 1, W)`` -> augmented windows of the same shape (a callable, as the core expects)."""

    def __init__(self, cfg: ToyAugmentConfig) -> None:
        self.cfg = cfg

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        b, _, w = x.shape
        dev = x.device
        lo, hi = math.log(cfg.gain[0]), math.log(cfg.gain[1])
        x = x * torch.exp(torch.empty(b, 1, 1, device=dev).uniform_(lo, hi))
        if cfg.shift > 0:  # circular shift by up to shift * W samples, either way
            most = int(cfg.shift * w)
            shift = torch.randint(-most, most + 1, (b, 1), device=dev)
            idx = (torch.arange(w, device=dev)[None, :] - shift) % w  # (B, W)
            x = x.gather(-1, idx[:, None, :].expand_as(x))
        if cfg.flip > 0:
            flip = torch.rand(b, 1, 1, device=dev) < cfg.flip
            x = torch.where(flip, x.flip(-1), x)
        if cfg.noise > 0:
            x = x + cfg.noise * x.std(dim=-1, keepdim=True) * torch.randn_like(x)
        # a time segment of a random partner window, inside the window
        return cutmix(x, alpha=cfg.cutmix, p=cfg.cutmix_p, dims=1, inside=True)
