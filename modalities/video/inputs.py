"""Raw inputs for prediction: a video file (decoded like one test clip) or a clip array."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aip.errors import AipError, UsageError
from aip.files import regular_file


def read_video(item: Any, cfg: Any) -> torch.Tensor:
    """A video file (the middle clip of the test protocol: ``cfg.frames`` frames ``cfg.data_stride`` apart at
    ``cfg.data_fps``, short side ``cfg.test_short_side``, centre crop ``cfg.size``) or a ``(C, T, H, W)`` clip in
    [0, 1] (resized to ``cfg.size``), as a ``(3, frames, size, size)`` float tensor."""
    if isinstance(item, (str, Path)):
        from modalities.video.datasets import VideoClips
        from modalities.video.decode import DecodeError

        p = regular_file(item, what="video", fix="check the path")  # a FIFO or a device is named, never opened
        try:
            return VideoClips([p], [0], cfg, views=1, train=False, cache_bytes=0).clips(0)[0]
        except DecodeError as e:
            raise AipError(f"cannot decode video {p} ({e}); give an mp4, avi, mkv, webm or mov file") from None
    x = item if isinstance(item, torch.Tensor) else torch.from_numpy(np.asarray(item))
    if x.dim() != 4 or x.shape[0] not in (1, 3) or x.shape[1] != cfg.frames:
        raise UsageError(f"a clip array must be (C, {cfg.frames}, H, W) with C = 1 or 3; got {tuple(x.shape)}")
    x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
    x = F.interpolate(x.transpose(0, 1), size=(cfg.size, cfg.size), mode="bilinear", antialias=True,
                      align_corners=False).transpose(0, 1)
    return x.expand(3, -1, -1, -1).clamp(0, 1).contiguous()


def input_spec(recipe: Any) -> dict[str, Any]:
    cfg = recipe.source
    return {
        "shape": [3, cfg.frames, cfg.size, cfg.size], "dtype": "float32", "range": [0.0, 1.0], "layout": "NCTHW",
        "frames": cfg.frames, "fps": cfg.data_fps, "frame_stride": cfg.data_stride,
        "preprocess": (f"{cfg.frames} RGB frames {cfg.data_stride} apart at {cfg.data_fps:g} fps; resize the short "
                       f"side to {cfg.test_short_side} px, centre-crop {cfg.size}x{cfg.size}; scale to [0, 1]; "
                       "the model normalises inside"),
        "interpolation": "bilinear", "antialias": True, "crop_mode": "center",
    }
