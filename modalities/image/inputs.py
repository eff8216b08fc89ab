"""Raw inputs for prediction: an image file or array, preprocessed like the recipe's test split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from aip.errors import AipError


def _as_pil(item: Any, mode: str) -> Image.Image:
    if isinstance(item, Image.Image):
        return item.convert(mode)
    if isinstance(item, (str, Path)):
        p = Path(item).expanduser()
        if not p.is_file():
            raise AipError(f"image {p} does not exist; check the path")
        try:
            with Image.open(p) as img:
                return img.convert(mode)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise AipError(f"cannot read image {p} ({type(e).__name__}); give a PNG, JPEG or other image file"
                           ) from None
    a = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):  # (C, H, W) -> (H, W, C)
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3):
        raise AipError(f"an image array must be (H, W), (H, W, 3) or (C, H, W); got shape {a.shape}")
    if a.dtype != np.uint8:  # floats are read as [0, 1]
        a = (np.clip(a.astype(np.float32), 0, 1) * 255).round().astype(np.uint8)
    return Image.fromarray(a).convert(mode)


def read_image(item: Any, *, size: int, channels: int, grid: bool) -> torch.Tensor:
    """``item`` (a path, PIL image, ``(H, W[, 3])`` or ``(C, H, W)`` array, uint8 or float in [0, 1]) as a
    ``(channels, size, size)`` float tensor in [0, 1], preprocessed like the test split: datasets of square
    images (``grid``) are resized to ``size`` x ``size``; photo datasets are resized to ``size / 0.875`` on the
    short side and centre-cropped."""
    from torchvision.transforms import v2

    img = _as_pil(item, "L" if channels == 1 else "RGB")
    steps = [v2.Resize((size, size), antialias=True)] if grid else [
        v2.Resize(round(size / 0.875), antialias=True), v2.CenterCrop(size)]
    return v2.Compose([*steps, v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])(img)


def input_spec(recipe: Any) -> dict[str, Any]:
    from modalities.image import datasets

    info = datasets.info(recipe.eval.dataset)
    size, channels = recipe.source.size, recipe.source.channels
    resize = (f"resize to {size}x{size}" if info.native_size else
              f"resize the short side to {round(size / 0.875)} px, centre-crop {size}x{size}")
    return {
        "shape": [channels, size, size], "dtype": "float32", "range": [0.0, 1.0], "layout": "NCHW",
        "color": "grayscale" if channels == 1 else "RGB",
        "preprocess": f"{resize}; scale pixels to [0, 1]; the model normalises inside",
        "normalization_inside_model": {"mean": list(info.mean), "std": list(info.std)},
    }
