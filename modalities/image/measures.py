"""Measures of the source image that may predict how well it distils (``aip source-stats``).

The paper plots accuracy against the source's file size ("denser images distil better", R^2 = 0.414 over 24
images). File size depends on the stored resolution and format, so every image is measured the same way
here: its short side resized to ``SIDE`` pixels (anti-aliased) and the centre square kept, as the recipe sees
it (RGB or grayscale), then

- ``png_bytes``, ``jpeg_bytes``: its size compressed as PNG (zlib level 9) and as JPEG (quality 90),
- ``pixel_entropy_bits``: Shannon entropy of its 8-bit value histogram (all channels pooled),
- ``patch_diversity``: the mean RMS difference between 256 random 16 x 16 patches (fixed seed), in [0, 1].
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from aip.errors import UsageError
from modalities.image.config import ImageSourceConfig
from modalities.image.source import load_image

SIDE = 512
PATCH, PATCHES = 16, 256


def square(img: torch.Tensor, side: int = SIDE) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] -> the centre ``side x side`` square after resizing the short side to ``side``,
    as an 8-bit ``(side, side, C)`` array."""
    h, w = img.shape[-2:]
    f = side / min(h, w)
    size = (max(side, round(h * f)), max(side, round(w * f)))
    x = F.interpolate(img[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    top, left = (size[0] - side) // 2, (size[1] - side) // 2
    x = x[:, top:top + side, left:left + side]
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def compressed_bytes(array: np.ndarray, fmt: str) -> int:
    im = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    buf = io.BytesIO()
    if fmt == "PNG":
        im.save(buf, format="PNG", compress_level=9)
    else:
        im.save(buf, format="JPEG", quality=90)
    return len(buf.getvalue())


def pixel_entropy(array: np.ndarray) -> float:
    counts = np.bincount(array.reshape(-1), minlength=256).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def patch_diversity(array: np.ndarray, *, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    side = array.shape[0]
    ys, xs = rng.integers(0, side - PATCH + 1, (2, PATCHES))
    patches = np.stack([array[y:y + PATCH, x:x + PATCH] for y, x in zip(ys, xs)]).reshape(PATCHES, -1) / 255.0
    # moved by the first patch (distances do not change) so that identical patches are exactly 0 apart:
    # |a|^2 + |b|^2 - 2ab of unmoved patches cancels to BLAS rounding noise, which differs between CPUs
    patches = patches - patches[0]
    sq = (patches**2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * patches @ patches.T, 0) / patches.shape[1]
    iu = np.triu_indices(PATCHES, 1)
    return float(np.sqrt(d2[iu]).mean())


def measures(cfg: ImageSourceConfig) -> dict[str, float]:
    """The measures above for the recipe's ``[source]`` image."""
    if cfg.uri == "dataset:train":
        raise UsageError("source.uri = 'dataset:train' is many images, not one; source measures need a single image")
    a = square(load_image(cfg))
    return {"png_bytes": compressed_bytes(a, "PNG"), "jpeg_bytes": compressed_bytes(a, "JPEG"),
            "pixel_entropy_bits": pixel_entropy(a), "patch_diversity": patch_diversity(a), "resolution": SIDE}
