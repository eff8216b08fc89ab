"""2-D view geometry shared by the image and video samplers: an anti-aliased pyramid of a picture, all its levels
packed into one atlas (so one ``grid_sample`` reads every view from its own level), the initial crop and the
random-resized-crop box sizes.

A view that shrinks a large region of the source must read a pre-filtered (smaller) copy of it, else it
aliases (mip-mapping). :func:`pyramid` makes the copies, :func:`atlas` places them side by side in one image
and returns, per level, the map from the level's ``grid_sample`` coordinates to the atlas's; a sampler picks
each view's level from its scale and composes that map into the view's own.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def pyramid(img: torch.Tensor, min_side: int) -> list[torch.Tensor]:
    """Anti-aliased levels of ``img`` ``(C, H, W)`` or ``(N, C, H, W)``, each ``(N, C, h, w)`` and half the size
    of the previous, from the image itself down to a short side of about ``min_side``."""
    levels = [img if img.dim() == 4 else img[None]]
    while min(levels[-1].shape[-2:]) >= 2 * min_side:
        h, w = levels[-1].shape[-2:]
        levels.append(F.interpolate(levels[-1], size=(h // 2, w // 2), mode="bilinear", antialias=True))
    return levels


def atlas(levels: list[torch.Tensor], *, gap: int = 2, mode: str = "constant") -> tuple[torch.Tensor, torch.Tensor]:
    """The pyramid's ``levels`` (each ``(N, C, h, w)``) in one ``(N, C, AH, AW)`` image, and per level the
    ``(4,)`` map ``(sx, sy, tx, ty)`` from the level's ``grid_sample`` coordinates to the atlas's
    (``x -> sx * x + tx``), as a ``(levels, 4)`` tensor.

    Level 0 is on the left and the smaller ones are stacked in a column to its right, each in a margin of
    ``gap`` pixels. The margins hold what each level's own padding would read: zeros (``mode = "constant"``,
    for ``padding_mode="zeros"``) or the edge pixels (``"replicate"``, for ``padding_mode="border"``); views
    must only sample inside their level or up to a pixel outside it (anything else is to be sent far outside
    the atlas).
    """
    n, c, h0, w0 = levels[0].shape
    places = [(gap, gap)]  # (x, y) of each level's first pixel
    col, y = w0 + 2 * gap, 0
    for lev in levels[1:]:
        places.append((col + gap, y + gap))
        y += lev.shape[-2] + 2 * gap
    aw = col + (levels[1].shape[-1] + 2 * gap if len(levels) > 1 else 0)
    ah = max(h0 + 2 * gap, y)
    packed = levels[0].new_zeros(n, c, ah, aw)
    maps = []
    for lev, (ox, oy) in zip(levels, places, strict=True):
        h, w = lev.shape[-2:]
        packed[..., oy - gap:oy + h + gap, ox - gap:ox + w + gap] = F.pad(lev, (gap,) * 4, mode=mode)
        # pixel p = ((x + 1) * w - 1) / 2 of the level is pixel p + ox of the atlas
        maps.append([w / aw, h / ah, (w + 2 * ox) / aw - 1, (h + 2 * oy) / ah - 1])
    return packed, torch.tensor(maps)


def initial_crops(n: int, *, height: int, width: int, init_crop: float, least: float, device: torch.device
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The initial crop of each of ``n`` views, ``(left, top, width, height)`` in source pixels, each ``(n,)``:
    with ``init_crop > 0`` a square of ``init_crop`` x the short side (at least ``least`` pixels) at a random
    place, else the whole ``width x height`` source. The views' random-resized-crop boxes are drawn inside it
    (:func:`fit_boxes`)."""
    if init_crop > 0:
        rw = rh = torch.full((n,), max(init_crop * min(height, width), least), device=device)
    else:
        rw, rh = torch.full((n,), float(width), device=device), torch.full((n,), float(height), device=device)
    rx = torch.rand(n, device=device) * (width - rw)
    ry = torch.rand(n, device=device) * (height - rh)
    return rx, ry, rw, rh


def boxes_in(rx: torch.Tensor, ry: torch.Tensor, rw: torch.Tensor, rh: torch.Tensor, *, scale: tuple[float, float],
             ratio: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One random-resized-crop box in each crop ``(left, top, width, height)`` (:func:`initial_crops`): its size
    from :func:`fit_boxes`, its place uniform inside the crop; ``(centre x, centre y, width, height)``, each
    ``(n,)``."""
    w, h = fit_boxes(rw * rh, rw, rh, scale=scale, ratio=ratio)
    cx = rx + w / 2 + torch.rand(rw.shape[0], device=rw.device) * (rw - w)
    cy = ry + h / 2 + torch.rand(rw.shape[0], device=rw.device) * (rh - h)
    return cx, cy, w, h


def fit_boxes(area: torch.Tensor, rw: torch.Tensor, rh: torch.Tensor, *, scale: tuple[float, float],
              ratio: tuple[float, float], tries: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Random-resized-crop box sizes ``(w, h)``, each ``(n,)``: ``area x U(scale)`` with a log-uniform aspect
    in ``ratio``, the first of ``tries`` candidates that fits in ``rw x rh`` (as torchvision and the paper loop
    until one fits), else the first clipped to it. Drawn on the device of ``area``, with no host read."""
    n, dev = area.shape[0], area.device
    a = area[:, None] * torch.empty(n, tries, device=dev).uniform_(*scale)
    logr = torch.empty(n, tries, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    w = torch.sqrt(a * torch.exp(logr))
    h = torch.sqrt(a / torch.exp(logr))
    ok = (w <= rw[:, None]) & (h <= rh[:, None])
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.zeros_like(rw, dtype=torch.long))
    w = torch.minimum(w.gather(1, first[:, None])[:, 0], rw)
    h = torch.minimum(h.gather(1, first[:, None])[:, 0], rh)
    return w, h
