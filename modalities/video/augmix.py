"""AugMix (Hendrycks et al. 2020) for batches of clips, with per-clip parameters shared by all frames.

``width`` chains each apply a random subset of the operations in :data:`GEOMETRY` and :data:`PIXELS`
(rotate, shear, translate x and y, posterize, solarize, autocontrast, sharpness, brightness, contrast); the
chains are mixed with Dirichlet(1) weights and the mixture is blended with the clip by ``m ~ Beta(1, 1)``.

Every operation is one entry of a table: a function of the clips and one value per clip, the value at which it
leaves a clip as it is (``identity``), and how far from its ``start`` a value may go at severity 10
(``magnitude``). One loop draws every value of a chain on the device, puts ``identity`` where an operation was
not drawn, and runs every operation on the whole batch: no mask is read back to the host, so a CUDA graph can
capture it (:mod:`aip.graphs`). The geometric operations are composed into one affine map per clip, sampled
with a single ``grid_sample`` over all frames. Equalize is replaced by autocontrast (a per-clip histogram
stretch), which is cheap batched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: RGB weights of luma (ITU-R BT.601)
LUMA = (0.299, 0.587, 0.114)
#: PIL's smoothing kernel ``[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13`` as 9/13 of the 3x3 mean plus 4/13 of the centre
SMOOTH_MEAN = 9 / 13
#: posterize's identity: 2^23 levels are finer than float32's resolution of [0, 1] near 1
ALL_BITS = 23.0
#: solarize's identity: a threshold above every pixel
NO_THRESHOLD = 2.0


@dataclass(frozen=True)
class Op:
    """One AugMix operation.

    A drawn clip gets the value ``start + magnitude * severity / 10 * u``, with ``u ~ U(-1, 1)`` (``signed``)
    or ``U(0, 1)``; a clip not drawn gets ``identity``. ``fn`` is ``(clips (n, C, T, H, W), values (n,)) ->
    clips`` for a pixel operation, and ``values (n,) -> (n, 3, 3)`` maps from output to input coordinates for a
    geometric one.
    """

    name: str
    fn: Callable[..., torch.Tensor]
    start: float
    magnitude: float
    identity: float
    signed: bool = True


def _box(x: torch.Tensor) -> torch.Tensor:
    """The 3x3 mean around every pixel of every frame of ``(n, C, T, H, W)`` (edges replicated), as an average
    pool (much cheaper than a one-channel convolution)."""
    flat = x.reshape(-1, 1, *x.shape[-2:])
    return F.avg_pool2d(F.pad(flat, (1, 1, 1, 1), mode="replicate"), 3, stride=1).view_as(x)


def _per_clip(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1, 1)


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep ``round(bits)`` bits of every value."""
    levels = _per_clip(2**bits.round() - 1)
    return x.mul(levels).add_(0.5).floor_().div_(levels)


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Invert the values at or above ``threshold``."""
    return torch.where(x >= _per_clip(threshold), 1 - x, x)


def autocontrast(x: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
    """Stretch each channel of a clip (all its frames) to [0, 1] where ``on`` > 0; a flat channel is kept."""
    lo, hi = torch.aminmax(x.flatten(2), dim=-1)  # (n, C) in one pass
    ok = (on > 0)[:, None] & (hi > lo)
    scale = torch.where(ok, 1 / (hi - lo).clamp(min=1e-6), 1.0)
    lo = torch.where(ok, lo, 0.0)
    return torch.addcmul((-lo * scale)[..., None, None, None], x, scale[..., None, None, None])


def sharpness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """``f x + (1 - f) smooth(x)``, ``smooth`` PIL's 3x3 smoothing filter (two passes over the clips)."""
    f = _per_clip(f)
    return _box(x).mul_((1 - f) * SMOOTH_MEAN).addcmul_(x, f + (1 - f) * (1 - SMOOTH_MEAN)).clamp_(0, 1)


def brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """``f x``, clamped to [0, 1]."""
    return (x * _per_clip(f)).clamp_(0, 1)


def contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Blend each clip with its mean grey (the luma of its channel means) by ``f``."""
    m = x.mean(dim=(2, 3, 4))  # (n, 3)
    grey = m[:, 0] * LUMA[0] + m[:, 1] * LUMA[1] + m[:, 2] * LUMA[2]
    return torch.lerp(_per_clip(grey), x, _per_clip(f)).clamp_(0, 1)


def _map(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor, tx: torch.Tensor,
         ty: torch.Tensor) -> torch.Tensor:
    """``(n, 3, 3)`` homogeneous maps ``[[a, b, tx], [c, d, ty], [0, 0, 1]]``."""
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([a, b, tx, c, d, ty, zero, zero, one], -1).view(-1, 3, 3)


def rotate(angle: torch.Tensor) -> torch.Tensor:
    """Rotations by ``angle`` radians."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    return _map(cos, -sin, sin, cos, torch.zeros_like(angle), torch.zeros_like(angle))


def shear(k: torch.Tensor) -> torch.Tensor:
    """Horizontal shears ``x + k y``."""
    one, zero = torch.ones_like(k), torch.zeros_like(k)
    return _map(one, k, zero, one, zero, zero)


def translate_x(t: torch.Tensor) -> torch.Tensor:
    """Moves by ``t`` along x (normalised coordinates: the side spans 2)."""
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    return _map(one, zero, zero, one, t, zero)


def translate_y(t: torch.Tensor) -> torch.Tensor:
    """Moves by ``t`` along y."""
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    return _map(one, zero, zero, one, zero, t)


#: geometric operations, composed in this order (translation after rotation after shear) into one map per clip
GEOMETRY = (
    Op("translate_x", translate_x, start=0.0, magnitude=2 / 3, identity=0.0),  # a third of the side
    Op("translate_y", translate_y, start=0.0, magnitude=2 / 3, identity=0.0),
    Op("rotate", rotate, start=0.0, magnitude=math.radians(30), identity=0.0),
    Op("shear", shear, start=0.0, magnitude=0.9, identity=0.0),
)
#: pixel operations, applied in this order
PIXELS = (
    Op("posterize", posterize, start=8.0, magnitude=-4.0, identity=ALL_BITS, signed=False),  # keep 4..8 bits
    Op("solarize", solarize, start=1.0, magnitude=-1.0, identity=NO_THRESHOLD, signed=False),
    Op("autocontrast", autocontrast, start=1.0, magnitude=0.0, identity=0.0),  # on (1) or off (0)
    Op("sharpness", sharpness, start=1.0, magnitude=0.9, identity=1.0),
    Op("brightness", brightness, start=1.0, magnitude=0.9, identity=1.0),
    Op("contrast", contrast, start=1.0, magnitude=0.9, identity=1.0),
)
OPS = GEOMETRY + PIXELS


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Warp every frame of each clip by its clip's ``(n, 2, 3)`` map (output -> input, normalised coords): the
    clip's frames are the channels of one ``grid_sample`` with one grid per clip (no copy of the clips, and a
    grid ``T`` times smaller than one per frame). A clip whose map is the identity is sampled at its own pixel
    centres: itself."""
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
        depth: expected number of operations per chain (each is drawn with probability ``depth / len(OPS)``).
    """

    def __init__(self, *, width: int = 3, severity: int = 3, depth: float = 2.0) -> None:
        super().__init__()
        self.width, self.s, self.p = width, severity / 10, min(depth / len(OPS), 1.0)
        self.register_buffer("start", torch.tensor([op.start for op in OPS]), persistent=False)
        self.register_buffer("magnitude", torch.tensor([op.magnitude for op in OPS]), persistent=False)
        self.register_buffer("identity", torch.tensor([op.identity for op in OPS]), persistent=False)
        self.register_buffer("signed", torch.tensor([op.signed for op in OPS]), persistent=False)

    def values(self, n: int) -> torch.Tensor:
        """``(len(OPS), n)`` values of one chain for ``n`` clips: drawn where an operation is drawn (with
        probability ``p``), its identity elsewhere."""
        u = torch.rand(2, len(OPS), n, device=self.start.device)
        u1 = torch.where(self.signed[:, None], u[0] * 2 - 1, u[0])
        drawn = self.start[:, None] + (self.magnitude * self.s)[:, None] * u1
        return torch.where(u[1] < self.p, drawn, self.identity[:, None])

    def chain(self, x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Every operation on every clip of ``x`` with its ``values`` (``(len(OPS), n)``, see :meth:`values`)."""
        theta = torch.eye(3, device=x.device).expand(x.shape[0], 3, 3)
        for op, v in zip(GEOMETRY, values[:len(GEOMETRY)], strict=True):
            theta = theta @ op.fn(v)
        x = _warp(x, theta[:, :2])
        for op, v in zip(PIXELS, values[len(GEOMETRY):], strict=True):
            x = op.fn(x, v)
        return x

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, dev = x.shape[0], x.device
        # Dirichlet(1, ..., 1) weights (B, width): normalised Exponential(1) draws, made on the device
        e = torch.empty(b, self.width, device=dev).exponential_()
        weights = e / e.sum(1, keepdim=True)
        mixed = self.chain(x, self.values(b)) * _per_clip(weights[:, 0])
        for i in range(1, self.width):
            mixed.addcmul_(self.chain(x, self.values(b)), _per_clip(weights[:, i]))
        m = _per_clip(torch.rand(b, device=dev))  # Beta(1, 1)
        return mixed.lerp_(x, m).clamp_(0, 1)  # m x + (1 - m) mixed
