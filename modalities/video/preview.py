"""Pictures of clips: a grid with one clip per row (frames side by side) and an animated GIF of the batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.float().clamp(0, 1) * 255).round().byte().cpu().numpy()


def clip_grid(clips: torch.Tensor, path: Path, *, padding: int = 2) -> Path:
    """Write ``(B, C, T, H, W)`` clips as a PNG: row ``b`` holds clip ``b``'s ``T`` frames, left to right."""
    b, c, t, h, w = clips.shape
    canvas = np.full((b * (h + padding) + padding, t * (w + padding) + padding, 3), 255, np.uint8)
    frames = _to_uint8(clips.expand(-1, 3, -1, -1, -1).permute(0, 2, 3, 4, 1))  # (B, T, H, W, 3)
    for i in range(b):
        for j in range(t):
            y, x = padding + i * (h + padding), padding + j * (w + padding)
            canvas[y:y + h, x:x + w] = frames[i, j]
    Image.fromarray(canvas).save(path)
    return path


def clip_gif(clips: torch.Tensor, path: Path, *, fps: float, columns: int = 8, padding: int = 2) -> Path:
    """Write ``(B, C, T, H, W)`` clips as one animated GIF: the clips tiled in a grid, playing at ``fps``."""
    b, c, t, h, w = clips.shape
    cols = min(columns, b)
    rows = -(-b // cols)
    frames = _to_uint8(clips.expand(-1, 3, -1, -1, -1).permute(2, 0, 3, 4, 1))  # (T, B, H, W, 3)
    pictures = []
    for k in range(t):
        canvas = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, 3), 255, np.uint8)
        for i in range(b):
            y, x = padding + (i // cols) * (h + padding), padding + (i % cols) * (w + padding)
            canvas[y:y + h, x:x + w] = frames[k, i]
        pictures.append(Image.fromarray(canvas))
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=max(int(1000 / fps), 20), loop=0)
    return path
