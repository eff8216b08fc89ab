"""Raw inputs for prediction: an image file or array, preprocessed like the recipe's test split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from aip.errors import AipError, UsageError
from aip.files import regular_file


def convert(img: Image.Image, mode: str) -> Image.Image:
    """``img`` in ``mode`` ("L" or "RGB"). Images of more than 8 bits per pixel (16-bit PNG or TIFF, 32-bit
    integer, float) are scaled to 8 bits first: PIL's own ``convert`` clips them at 255, which turns a 16-bit
    photo white. Integers are read as 16-bit unless none exceeds 255; floats as [0, 1] unless one exceeds 1,
    then as [0, max]."""
    if img.mode == "F" or img.mode.startswith("I"):
        a = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = float(a.max(initial=0.0))
        if img.mode == "F":
            scale = 1.0 if top <= 1 else top
        else:
            scale = 65535.0 if top > 255 or img.mode.startswith("I;16") else 255.0
        img = Image.fromarray((np.clip(a / scale, 0, 1) * 255).round().astype(np.uint8), "L")
    return img.convert(mode)


def open_image(path: Path, mode: str, *, what: str = "image", fix: str = "give a PNG, JPEG or other image file",
               upright: bool = True) -> Image.Image:
    """The image file ``path`` in ``mode`` ("L" or "RGB"; deep images scaled by :func:`convert`), turned as
    viewers show it by its EXIF orientation when ``upright`` (a phone photo). A file PIL cannot decode, or will
    not (over twice ``Image.MAX_IMAGE_PIXELS``: PIL's guard against decompression bombs, which aip keeps, as one
    such file would take gigabytes), is a one-line :class:`AipError` naming ``what`` and ``fix``."""
    try:
        with Image.open(path) as img:
            return convert(ImageOps.exif_transpose(img) if upright else img, mode)
    except Image.DecompressionBombError as e:
        size = str(e).split(", could")[0].rstrip(".")
        raise AipError(f"{what} {path} is too large to decode ({size}); downscale it first, e.g. to 8192 pixels on "
                       "its long side") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        text = " ".join(str(e).split()) or type(e).__name__
        raise AipError(f"cannot read {what} {path} ({text[:200]}); {fix}") from None


def _as_pil(item: Any, mode: str) -> Image.Image:
    if isinstance(item, Image.Image):
        return convert(item, mode)
    if isinstance(item, (str, Path)):
        p = regular_file(item, what="image", fix="check the path")  # a FIFO or a device is named, never opened
        return open_image(p, mode)
    a = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):  # (C, H, W) -> (H, W, C)
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3):
        raise UsageError(f"an image array must be (H, W), (H, W, 3) or (C, H, W); got shape {a.shape}")
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


def input_spec(recipe: Any, *, grid: bool, native_channels: int, description: str,
               norm: tuple[list[float], list[float]]) -> dict[str, Any]:
    """What the models of ``recipe`` take, for an export's ``config.json``. The dataset's facts come from the
    caller (:func:`modalities.image.datasets.info`), so this module, which the datasets use to open images, does
    not import them back: ``grid`` (square images resized as they are, not cropped), its ``native_channels``, its
    ``description``, and its normalisation ``norm`` (``(mean, std)``; the student's own ``mean``/``std`` win)."""
    size, channels = recipe.source.size, recipe.source.channels
    mean, std = ((list(recipe.student.mean), list(recipe.student.std)) if recipe.student.mean
                 else (list(norm[0]), list(norm[1])))
    resize = (f"resize to {size}x{size}" if grid else
              f"resize the short side to {round(size / 0.875)} px, centre-crop {size}x{size}")
    return {
        "shape": [channels, size, size], "dtype": "float32", "range": [0.0, 1.0], "layout": "NCHW",
        "color": "grayscale" if channels == 1 else "RGB",
        "preprocess": f"{resize}; scale pixels to [0, 1]; the model normalises inside",
        "normalization_inside_model": {"mean": mean, "std": std},
        # what timm's pretrained_cfg and the model card need: how read_image resizes, and the pixels' polarity
        "interpolation": "bilinear", "antialias": True, "crop_pct": 1.0 if grid else 0.875,
        "crop_mode": "squash" if grid else "center",
        "polarity": _polarity(native_channels, mean), "dataset": description,
    }


def _polarity(native_channels: int, mean: list[float]) -> str:
    """What a grey dataset's pixels look like, from its mean (Fashion-MNIST's 0.29: light objects on black); a
    picture of the other polarity is not inverted by aip, and is misread."""
    if native_channels != 1:
        return "photographs as they are (not inverted)"
    if mean[0] < 0.5:
        return (f"light objects on a dark background (mean pixel {mean[0]:.2f}); invert a dark object on a white "
                "background first")
    return f"dark objects on a light background (mean pixel {mean[0]:.2f}); invert a light object on black first"
