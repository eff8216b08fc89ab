"""The offline ``motion`` set: short clips of a textured scene seen by a camera that pans left, right, up or down,
or zooms in or out. Single frames cannot tell the six classes apart; only the motion does.

Each clip has its own random texture (blocky colour noise at a random block size, so train and test clips
never share a scene), its own speed and its own start, and is written as an MPEG-4 file with PyAV in the
``videofolder`` layout (``train/CLASS/*.mp4``, ``val/CLASS/*.mp4``), so it is read by the same loader as a
user's own folder of videos. Built once (a few seconds) and cached.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from aip.cache import synthetic_set

#: pan direction (dy, dx) per frame, or zoom sign (+1 in: the seen window shrinks; -1 out)
PANS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
ZOOMS = {"zoom-in": 1, "zoom-out": -1}
CLASSES = (*PANS, *ZOOMS)
SUPER = 2
VERSION = 2


def write_video(path: Path, frames: np.ndarray, *, fps: int = 8) -> Path:
    """Write ``(T, H, W, 3)`` uint8 frames as an MPEG-4 video (``.mp4`` or ``.avi``) with PyAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "3"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def texture(rng: np.random.Generator, size: int, block: int = 4) -> np.ndarray:
    """A ``(size, size, 3)`` float texture in [0, 1]: random colours in ``block`` x ``block`` squares."""
    noise = rng.random((size // block + 2, size // block + 2, 3))
    return np.kron(noise, np.ones((block, block, 1)))[:size, :size]


def moving_texture(rng: np.random.Generator, motion: str, *, frames: int = 8, size: int = 32, speed: float = 3,
                   block: int = 4) -> np.ndarray:
    """A camera window of ``size`` px moving over a random texture: ``(T, size, size, 3)`` uint8.

    A pan moves the window ``speed`` px per frame; a zoom changes its side by ``2 * speed`` px per frame (in: it
    shrinks, so the scene grows), each frame resampled to ``size`` px from a scene drawn at twice the
    resolution.
    """
    if motion in PANS:
        dy, dx = PANS[motion]
        big = size + int(np.ceil(frames * speed)) + 8
        scene = texture(rng, big, block)
        y0 = big // 2 - size // 2 - dy * int(frames * speed) // 2
        x0 = big // 2 - size // 2 - dx * int(frames * speed) // 2
        out = [scene[y0 + round(dy * t * speed): y0 + round(dy * t * speed) + size,
                     x0 + round(dx * t * speed): x0 + round(dx * t * speed) + size] for t in range(frames)]
        return (np.stack(out) * 255).astype(np.uint8)
    if motion not in ZOOMS:
        raise ValueError(f"unknown motion {motion!r}; known: {', '.join(CLASSES)}")
    # rendered from a scene at SUPER x the resolution, so every frame is resampled the same way (downscaled,
    # antialiased): a frame copied 1:1 would be crisper than the rest and give the direction away
    sides = SUPER * (size + 2 * speed * np.arange(frames)[::-ZOOMS[motion]])  # zoom in: widest window first
    big = int(np.ceil(sides.max())) + 2
    scene = torch.from_numpy(texture(rng, big, SUPER * block)).permute(2, 0, 1)[None].float()
    c = big / 2
    out = []
    for s in sides:
        lo, hi = int(round(c - s / 2)), int(round(c + s / 2))
        crop = scene[:, :, lo:hi, lo:hi]
        out.append(F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0])
    return (torch.stack(out).permute(0, 2, 3, 1).clamp(0, 1) * 255).to(torch.uint8).numpy()


def build_motion_set(root: Path, *, train_per_class: int = 32, test_per_class: int = 12, frames: int = 8,
                     size: int = 32) -> Path:
    """Build (once) the motion set under ``root`` and return its folder (``root/motion-vV-HASH``).

    Args:
        root: parent folder (the dataset cache).
        train_per_class: training clips per class.
        test_per_class: test clips per class (their textures are drawn apart from the training ones).
        frames: frames per clip (8 fps).
        size: frame side in pixels.
    """
    def write(part: Path) -> None:
        for split, n, seed in (("train", train_per_class, 0), ("val", test_per_class, 1)):
            rng = np.random.default_rng([VERSION, seed])
            for name in CLASSES:
                for i in range(n):
                    speed = float(rng.uniform(2.0, 4.0)) if name in PANS else float(rng.uniform(1.5, 2.5))
                    clip = moving_texture(rng, name, frames=frames, size=size, speed=speed,
                                          block=int(rng.integers(3, 7)))
                    write_video(part / split / name / f"{i:03d}.mp4", clip)

    return synthetic_set(root, "motion", version=VERSION, params=(train_per_class, test_per_class, frames, size),
                         complete=lambda folder: (folder / "val").is_dir(), write=write)
