"""CutMix for any modality: each sample gets a box of a random partner of its batch, over its last ``dims`` axes.

The box spans the trailing ``dims`` axes of a sample and is shared by every axis before them: a stretch of
time for waveforms ``(B, L)`` or ``(B, C, L)`` (``dims=1``), a rectangle for images ``(B, C, H, W)``
(``dims=2``), the same rectangle on every frame of clips ``(B, C, T, H, W)`` (``dims=2``). Every random number
is drawn on the batch's device and nothing is read back to the host, so a CUDA graph can capture it
(:mod:`aip.graphs`).
"""

from __future__ import annotations

import torch

from aip import graphs


def box_mask(lam: torch.Tensor, shape: tuple[int, ...], *, inside: bool) -> torch.Tensor:
    """``(B, *shape)`` boolean boxes, one per sample, each of side ``(1 - lam) ** (1 / k)`` times every axis of
    ``shape`` (``k = len(shape)``), so that it covers ``1 - lam`` of the sample (``lam``: ``(B,)``).

    ``inside``: the box lies inside the sample, its start uniform over the places it fits, and so covers
    exactly ``1 - lam`` (up to whole pixels); otherwise its centre is uniform over the sample and the box is
    clipped at the edges, as in the original CutMix (it then covers ``1 - lam`` at most). A pixel is in the box
    when its centre is.
    """
    b, dev = lam.shape[0], lam.device
    side = (1.0 - lam).clamp(min=0.0) ** (1.0 / len(shape))  # (B,) fraction of every axis
    mask = torch.ones(b, *([1] * len(shape)), dtype=torch.bool, device=dev)
    for axis, size in enumerate(shape):
        width = side * size
        u = torch.rand(b, device=dev)
        start = u * (size - width) if inside else u * size - width / 2
        centres = torch.arange(size, device=dev, dtype=lam.dtype) + 0.5
        view = [1] * len(shape)
        view[axis] = size
        centres = centres.view(1, *view)
        lo, hi = start.view(-1, *[1] * len(shape)), (start + width).view(-1, *[1] * len(shape))
        mask = mask & (centres >= lo) & (centres < hi)
    return mask


def cutmix(x: torch.Tensor, *, alpha: float, p: float = 1.0, dims: int = 2, inside: bool = False) -> torch.Tensor:
    """Paste into each sample, with probability ``p``, a box of a random partner sample (a random permutation
    of the batch), covering ``1 - lambda`` of its last ``dims`` axes with ``lambda ~ Beta(alpha, alpha)`` per
    sample (see :func:`box_mask` for ``inside``). Returns a new tensor; ``alpha <= 0`` or ``p <= 0``: ``x``.

    Args:
        x: ``(B, ..., *box axes)``: the box is the same on every axis between the batch and its last ``dims``.
        alpha: the Beta parameter.
        p: probability that a sample gets a box at all.
        dims: how many trailing axes the box spans (1: time, 2: height and width).
        inside: keep the box inside the sample (a stretch of exactly ``1 - lambda`` of a window) instead of
            centring it anywhere and clipping it.
    """
    if alpha <= 0 or p <= 0:
        return x
    if not 1 <= dims < x.dim():
        raise ValueError(f"cutmix spans 1..{x.dim() - 1} trailing axes of a {x.dim()}-D batch, not {dims}")
    b, dev = x.shape[0], x.device
    lam = graphs.beta(alpha, b, dev)
    box = box_mask(lam, tuple(x.shape[-dims:]), inside=inside)
    box &= (torch.rand(b, device=dev) < p).view(-1, *[1] * dims)
    box = box.view(b, *[1] * (x.dim() - 1 - dims), *x.shape[-dims:])  # shared by channels (and frames)
    partner = x.index_select(0, graphs.permutation(b, dev))
    return torch.where(box, partner, x, out=partner)
