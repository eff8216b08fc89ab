"""Batched colour jitter as ONE per-sample affine colour transform (``out = A @ pixel + offset``).

Brightness, contrast, saturation and hue (rotation of the chroma plane in YIQ space) are each linear in the
pixel colour, so their composition is a 3x3 matrix per sample plus a grey offset from contrast; applying it
is one batched matrix product, where kornia's ``ColorJitter`` goes through HSV conversions (far slower; see
docs/benchmarks.md). Hue in YIQ approximates HSV hue rotation (it keeps luma fixed), which is all a random
augmentation needs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_LUMA = torch.tensor([0.299, 0.587, 0.114])
_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


class ColorJitter(nn.Module):
    """Random brightness, contrast, saturation and hue, each factor drawn per sample; applied with probability p.

    Args:
        brightness, contrast, saturation: factors are drawn from ``[1 - v, 1 + v]``.
        hue: shift drawn from ``[-hue, hue]`` turns (0.5 = half a turn).
        grayscale_p: then, with this probability per sample, replace the colour by its luma (also linear, so
            it joins the same matrix; RGB input only).
    """

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float, *, p: float,
                 grayscale_p: float = 0.0) -> None:
        super().__init__()
        self.b, self.c, self.s, self.h, self.p = brightness, contrast, saturation, hue, p
        self.grayscale_p = grayscale_p
        self.register_buffer("luma", _LUMA, persistent=False)
        self.register_buffer("rgb2yiq", _RGB2YIQ, persistent=False)
        self.register_buffer("yiq2rgb", torch.linalg.inv(_RGB2YIQ), persistent=False)

    def _factor(self, v: float, n: int, on: torch.Tensor) -> torch.Tensor:
        f = torch.empty(n, device=on.device).uniform_(1 - v, 1 + v) if v > 0 else torch.ones(n, device=on.device)
        return torch.where(on, f, torch.ones_like(f))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, C, ...)`` with C = 1 or 3, values in [0, 1]."""
        if self.p <= 0 and (self.grayscale_p <= 0 or x.shape[1] != 3):
            return x
        n, c, dev = x.shape[0], x.shape[1], x.device
        on = torch.rand(n, device=dev) < self.p
        b, ct = self._factor(self.b, n, on), self._factor(self.c, n, on)
        flat = x.reshape(n, c, -1)
        means = flat.mean(-1)  # (B, C): the mean grey is the luma of the channel means (one reduction pass)
        grey_mean = means @ self.luma.to(x.dtype) if c == 3 else means[:, 0]
        offset = (1 - ct) * b * grey_mean  # contrast blends towards the (brightened) mean grey
        if c == 1:
            out = flat * (ct * b)[:, None, None] + offset[:, None, None]
            return out.reshape_as(x).clamp_(0, 1)
        s = self._factor(self.s, n, on)
        eye = torch.eye(3, device=dev).expand(n, 3, 3)
        sat = s[:, None, None] * eye + (1 - s)[:, None, None] * self.luma[None, None, :]  # blend with grey
        theta = torch.empty(n, device=dev).uniform_(-self.h, self.h) * 2 * math.pi
        theta = torch.where(on, theta, torch.zeros_like(theta))
        cos, sin = torch.cos(theta), torch.sin(theta)
        rot = torch.zeros(n, 3, 3, device=dev)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
        hue = self.yiq2rgb @ rot @ self.rgb2yiq
        a = (ct * b)[:, None, None] * (hue @ sat)  # (B, 3, 3)
        if self.grayscale_p > 0:  # luma in every channel: L @ a, with L = ones(3, 1) @ luma(1, 3)
            grey = torch.rand(n, device=dev) < self.grayscale_p
            to_grey = self.luma.expand(3, 3)
            a = torch.where(grey[:, None, None], to_grey @ a, a)
        return mix_channels(flat, a.to(x.dtype), offset.to(x.dtype)).reshape_as(x).clamp_(0, 1)


def mix_channels(flat: torch.Tensor, a: torch.Tensor, offset: torch.Tensor, *, bmm: bool | None = None) -> torch.Tensor:
    """``a @ flat + offset`` for ``flat`` ``(B, 3, P)``, ``a`` ``(B, 3, 3)``, ``offset`` ``(B,)``.

    ``bmm`` (default: off CUDA) one ``baddbmm``; else three broadcast multiply-adds. Both are kept because each
    is the faster one on its device: on CUDA a batched matrix product with an inner dimension of 3 runs at a
    fraction of the memory bandwidth, and on 2 CPU cores ``baddbmm`` took 12 ms against 33 ms for 1024 views of
    28 x 28 and 68 ms against 110 ms for 256 views of 96 x 96 (docs/benchmarks.md, 2026-11-30)."""
    if bmm if bmm is not None else flat.device.type != "cuda":
        return torch.baddbmm(offset[:, None, None].expand(-1, 3, 1), a, flat)  # one pass
    out = torch.addcmul(offset[:, None, None], a[:, :, 0:1], flat[:, 0:1])
    return out.addcmul_(a[:, :, 1:2], flat[:, 1:2]).addcmul_(a[:, :, 2:3], flat[:, 2:3])
