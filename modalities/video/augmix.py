"""AugMix (Hendrycks et al. 2020) for batches of clips, with per-clip parameters shared by all frames.

``width`` chains each apply a random subset of operations (rotate, shear, translate, posterize, solarize,
autocontrast, sharpness, brightness, contrast); the chains are mixed with Dirichlet(1) weights and the mixture
is blended with the clip by ``m ~ Beta(1, 1)``. Each chain draws its own parameters per clip.

Every operation is a few tensor operations on the selected clips only, or (on CUDA, and for a CUDA graph) on
all clips with parameters that make it the identity where it was not drawn; the geometric ones of a chain are
composed into one affine map sampled with a single ``grid_sample`` over all frames. kornia's equivalents under ``VideoSequential`` measured about 7 clips/s (4 x 160 x 160) on one CPU core
for three chains; this is several times faster. Equalize is replaced by autocontrast (a per-clip histogram
stretch), which is cheap batched.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_LUMA = (0.299, 0.587, 0.114)


def _grey(x: torch.Tensor, luma: torch.Tensor) -> torch.Tensor:
    """Luma of ``(n, 3, T, H, W)`` as ``(n, 1, T, H, W)`` (``luma``: the ``(3,)`` weights)."""
    return (x * luma.to(x.dtype).view(1, 3, 1, 1, 1)).sum(1, keepdim=True)


def _blend(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """``b + f * (a - b)`` with one factor per clip (``f``: ``(n,)``), clamped to [0, 1]."""
    return (b + f.view(-1, 1, 1, 1, 1) * (a - b)).clamp_(0, 1)


def _box(x: torch.Tensor) -> torch.Tensor:
    """The 3x3 mean around every pixel of every frame of ``(n, C, T, H, W)`` (edges replicated), as an average
    pool (much cheaper than a one-channel convolution)."""
    flat = x.reshape(-1, 1, *x.shape[-2:])
    return F.avg_pool2d(F.pad(flat, (1, 1, 1, 1), mode="replicate"), 3, stride=1).view_as(x)


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """Every frame smoothed by PIL's kernel ``[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13``: 9/13 of the 3x3 mean
    (:func:`_box`) plus 4/13 of the centre."""
    return _box(x).mul_(9 / 13).add_(x, alpha=4 / 13)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Warp every frame of each clip by its clip's ``(n, 2, 3)`` map (output -> input, normalised coords): the
    clip's frames are the channels of one ``grid_sample`` with one grid per clip (no copy of the clips, and a
    grid ``T`` times smaller than one per frame)."""
    n, c, t, h, w = x.shape
    grid = F.affine_grid(theta.to(x.dtype), [n, 1, h, w], align_corners=False)
    out = F.grid_sample(x.reshape(n, c * t, h, w), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out.view(n, c, t, h, w)


class AugMix(nn.Module):
    """``(B, C, T, H, W)`` in [0, 1] -> AugMix'ed clips of the same shape (per-clip parameters).

    Args:
        width: number of chains.
        severity: 1..10, scales the operations' magnitudes (AugMix's default is 3).
        depth: expected number of operations per chain (each is applied with probability ``depth / 9``).
        whole: run each operation on the whole batch and keep it under a mask where drawn (the default on CUDA,
            where picking the subset would read the mask back to the host), rather than on the picked clips.
        capture: read nothing back to the host (implies ``whole``), so a CUDA graph can capture it
            (:mod:`aip.graphs`); every random number is drawn on the clips' device either way.
    """

    OPS = ("rotate", "shear", "translate", "posterize", "solarize", "autocontrast", "sharpness", "brightness",
           "contrast")

    def __init__(self, *, width: int = 3, severity: int = 3, depth: float = 2.0, whole: bool | None = None,
                 capture: bool = False) -> None:
        super().__init__()
        # ops on the whole batch under a mask (None: on CUDA), else on the picked clips
        self.whole = True if capture else whole
        self.width, self.s, self.p = width, severity / 10, min(depth / len(self.OPS), 1.0)
        self.register_buffer("luma", torch.tensor(_LUMA), persistent=False)
        self.register_buffer("identity", torch.eye(2, 3), persistent=False)

    def _geometry(self, n: int, dev: torch.device) -> torch.Tensor:
        """Per-clip ``(n, 2, 3)`` composition of a random rotation, shear and translation (each maybe off)."""
        s = self.s

        def draw(limit: float) -> torch.Tensor:
            v = (torch.rand(n, device=dev) * 2 - 1) * limit
            return torch.where(torch.rand(n, device=dev) < self.p, v, torch.zeros_like(v))

        rot, shear = draw(math.radians(30 * s)), draw(0.3 * s * 3)
        tx, ty = draw(s / 3 * 2), draw(s / 3 * 2)  # a third of the side at severity 10 (coords span 2)
        cos, sin = torch.cos(rot), torch.sin(rot)
        a = torch.stack([torch.stack([cos, -sin + cos * shear], -1), torch.stack([sin, cos + sin * shear], -1)], 1)
        return torch.cat([a, torch.stack([tx, ty], -1)[..., None]], -1)

    def _chain(self, x: torch.Tensor) -> torch.Tensor:
        n, dev, s = x.shape[0], x.device, self.s
        # on CUDA every op runs on the whole batch and a mask keeps it where drawn: picking the subset would
        # read the mask back to the host and stall the queue; on the CPU only the picked clips are computed
        whole = dev.type == "cuda" if self.whole is None else self.whole
        theta = self._geometry(n, dev)
        moved = (theta - self.identity).abs().amax(dim=(1, 2)) > 0
        if whole:  # a clip whose map is the identity is sampled at its own pixel centres: itself
            x = _affine(x, theta)
        elif moved.any():  # warp only the clips whose map is not the identity
            idx = moved.nonzero()[:, 0]
            x = x.index_copy(0, idx, _affine(x[idx], theta[idx]))
        for op in self.OPS[3:]:
            on = torch.rand(n, device=dev) < self.p
            if whole:
                x = self._whole(op, x, torch.rand(n, device=dev), on)
                continue
            idx = on.nonzero()[:, 0]
            if len(idx) == 0:
                continue
            y, k = x[idx], len(idx)
            u = torch.rand(k, device=dev)
            if op == "posterize":  # keep 8 - 4s .. 8 bits
                bits = (8 - u * 4 * s).round()
                levels = (2**bits).view(-1, 1, 1, 1, 1)
                y = torch.floor(y * (levels - 1) + 0.5) / (levels - 1)
            elif op == "solarize":  # invert pixels above a threshold in [1 - s, 1]
                thr = (1 - u * s).view(-1, 1, 1, 1, 1)
                y = torch.where(y >= thr, 1 - y, y)
            elif op == "autocontrast":  # stretch each clip's channels to [0, 1]
                lo = y.amin(dim=(2, 3, 4), keepdim=True)
                hi = y.amax(dim=(2, 3, 4), keepdim=True)
                y = torch.where(hi > lo, (y - lo) / (hi - lo).clamp(min=1e-6), y)
            elif op == "sharpness":  # blend with a 3x3 smoothed copy
                y = _blend(y, _smooth(y), 1 + (u * 2 - 1) * 0.9 * s)
            elif op == "brightness":
                y = _blend(y, torch.zeros_like(y), 1 + (u * 2 - 1) * 0.9 * s)
            elif op == "contrast":
                mean = _grey(y, self.luma).mean(dim=(2, 3, 4), keepdim=True)
                y = _blend(y, mean.expand_as(y), 1 + (u * 2 - 1) * 0.9 * s)
            x = x.index_copy(0, idx, y)
        return x

    def _whole(self, op: str, x: torch.Tensor, u: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
        """Operation ``op`` on every clip of ``x``, with parameters that make it the identity (up to rounding)
        on the clips where it is not drawn (``on``), so no mask pass is needed: the same results as the picked
        clips' path, in a few passes over the batch (memory traffic is what these cost on a GPU)."""
        s, shape = self.s, (-1, 1, 1, 1, 1)
        if op == "posterize":  # off: 2^23 levels, finer than float32's resolution of [0, 1] near 1
            bits = torch.where(on, (8 - u * 4 * s).round(), 23.0)
            levels = (2**bits - 1).view(shape)
            return x.mul(levels).add_(0.5).floor_().div_(levels)
        if op == "solarize":  # off: a threshold above every pixel
            thr = torch.where(on, 1 - u * s, 2.0).view(shape)
            return torch.where(x >= thr, 1 - x, x)
        if op == "autocontrast":  # off (or a flat channel): offset 0, scale 1
            lo, hi = torch.aminmax(x.flatten(2), dim=-1)  # (n, c) in one pass
            ok = on[:, None] & (hi > lo)
            scale = torch.where(ok, 1 / (hi - lo).clamp(min=1e-6), 1.0)
            lo = torch.where(ok, lo, 0.0)
            return torch.addcmul((-lo * scale)[..., None, None, None], x, scale[..., None, None, None])
        f = torch.where(on, 1 + (u * 2 - 1) * 0.9 * s, 1.0).view(shape)  # off: blend factor 1, the clip itself
        if op == "sharpness":  # f x + (1 - f) smooth, smooth = (9 box + 4 x) / 13 (see _smooth): two passes
            return _box(x).mul_((1 - f) * (9 / 13)).addcmul_(x, f + (1 - f) * (4 / 13)).clamp_(0, 1)
        if op == "brightness":
            return (x * f).clamp_(0, 1)
        if op == "contrast":  # the mean grey of a clip is the luma of its channel means
            mean = (x.mean(dim=(2, 3, 4)) @ self.luma.to(x.dtype)).view(shape)
            return torch.lerp(mean, x, f).clamp_(0, 1)
        raise ValueError(f"unknown AugMix operation {op!r}")

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, dev = x.shape[0], x.device
        # Dirichlet(1, ..., 1) weights (B, width): normalised Exponential(1) draws, made on the device
        e = torch.empty(b, self.width, device=dev).exponential_()
        weights = e / e.sum(1, keepdim=True)
        mixed = self._chain(x) * weights[:, 0].view(-1, 1, 1, 1, 1)  # a chain may return x itself
        for i in range(1, self.width):
            mixed.addcmul_(self._chain(x), weights[:, i].view(-1, 1, 1, 1, 1))
        m = torch.rand(b, device=dev).view(-1, 1, 1, 1, 1)  # Beta(1, 1)
        return mixed.lerp_(x, m).clamp_(0, 1)  # m x + (1 - m) mixed
