"""The offline ``motion-objects`` set: a textured object moving over a textured background that drifts slowly.

Eight classes, told apart only by what the object does: it moves left, right, up or down, grows (``zoom-in``),
shrinks (``zoom-out``) or turns clockwise or counter-clockwise (as seen on screen). The background drifts a
little in a random direction in every clip, so a model cannot read the class from "whatever moves"; it has to
find the object and follow it.

Each clip draws its object's shape (``SHAPES``; a blob's outline is random), size, place, speed and texture
(``OBJECT_TEXTURES``, random colours, angle and period) and its background's texture and drift. Train and test
never share a texture: every texture is drawn from a seed that names its split (``Clip.seed``), so the teacher
cannot recognise a test clip by its appearance. The drawn parameters of every clip are written to
``clips.json``.

Frames are rendered at ``SUPER`` x the resolution and averaged down (antialiased edges, sub-pixel motion), then
written as MPEG-4 files in the ``videofolder`` layout (``train/CLASS/*.mp4``, ``val/CLASS/*.mp4``), like the
``motion`` set. Built once and cached.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aip.cache import synthetic_set
from aip.files import write_text
from modalities.video.motion import write_video

#: per-frame direction ``(dx, dy)`` of the object's centre in image coordinates (y points down)
MOVES = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
#: sign of the change of the object's size per frame
ZOOMS = {"zoom-in": 1, "zoom-out": -1}
#: sign of the change of the object's angle per frame; with y pointing down a growing angle turns clockwise
TURNS = {"rotate-cw": 1, "rotate-ccw": -1}
CLASSES = (*MOVES, *ZOOMS, *TURNS)
SHAPES = ("disc", "square", "triangle", "pentagon", "cross", "blob")
OBJECT_TEXTURES = ("stripes", "spots", "checks", "rings")
BACKGROUND_TEXTURES = ("blocks", "smooth")
SPLITS = {"train": 0, "val": 1}
SUPER = 4
VERSION = 1


@dataclass(frozen=True)
class Clip:
    """The drawn parameters of one clip (lengths in output pixels, angles in degrees, per frame)."""

    motion: str
    shape: str
    object_texture: str
    background_texture: str
    seed: tuple[int, int, int]  # (split, class, clip): the seed of every texture of this clip
    radius: float
    centre: tuple[float, float]  # (x, y) of the first frame
    speed: float  # px per frame (moves), growth factor per frame (zooms), degrees per frame (turns)
    angle: float
    drift: tuple[float, float]  # background (dx, dy) per frame


def texture(kind: str, rng: np.random.Generator, side: int) -> np.ndarray:
    """A ``(side, side, 3)`` float texture in [0, 1] of the given kind (see the module's texture lists)."""
    y, x = np.mgrid[0:side, 0:side].astype(float)
    # a dark and a light colour: MPEG-4 keeps colour at half the resolution, so the pattern lives in brightness
    colours = (rng.uniform(0.0, 0.4, 3), rng.uniform(0.6, 1.0, 3))
    if kind == "blocks":  # random colours in random-sized squares
        block = int(rng.integers(2, 5))
        noise = rng.random((side // block + 2, side // block + 2, 3))
        return np.kron(noise, np.ones((block, block, 1)))[:side, :side]
    if kind == "smooth":  # low-resolution colour noise, bicubic-upsampled: soft blotches
        low = torch.from_numpy(rng.random((1, 3, 5, 5)))
        up = F.interpolate(low, size=(side, side), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).numpy()
        lo, hi = up.min(), up.max()
        return (up - lo) / max(hi - lo, 1e-6)
    if kind == "stripes":  # two colours in stripes at a random angle and period
        a, period = rng.uniform(0, np.pi), rng.uniform(side / 5, side / 3)
        on = (np.cos(a) * x + np.sin(a) * y) % period < period / 2
    elif kind == "spots":  # round spots on a square grid at a random angle and period
        a, period = rng.uniform(0, np.pi / 2), rng.uniform(side / 5, side / 3)
        u, v = np.cos(a) * x + np.sin(a) * y, -np.sin(a) * x + np.cos(a) * y
        on = np.hypot(u % period - period / 2, v % period - period / 2) < period / 3
    elif kind == "checks":  # a checkerboard of two colours at a random angle and cell size
        a, cell = rng.uniform(0, np.pi / 2), rng.uniform(side / 6, side / 4)
        u, v = np.cos(a) * x + np.sin(a) * y, -np.sin(a) * x + np.cos(a) * y
        on = (np.floor(u / cell) + np.floor(v / cell)) % 2 == 0
    elif kind == "rings":  # concentric rings around an off-centre point (so a turn changes the picture)
        cx, cy, period = *rng.uniform(0, side, 2), rng.uniform(side / 6, side / 4)
        on = np.hypot(x - cx, y - cy) % period < period / 2
    else:
        raise ValueError(f"unknown texture {kind!r}")
    return np.where(on[..., None], colours[0], colours[1])


def _polygon(u: torch.Tensor, v: torch.Tensor, n: int) -> torch.Tensor:
    """Inside a regular ``n``-gon of circumradius 1 (a vertex up): every edge's normal projection is below the
    apothem."""
    inside = torch.ones_like(u, dtype=torch.bool)
    for k in range(n):
        a = -np.pi / 2 + (2 * k + 1) * np.pi / n  # the normal of the edge between vertices k and k + 1
        inside &= np.cos(a) * u + np.sin(a) * v <= np.cos(np.pi / n)
    return inside


def shape_mask(shape: str, u: torch.Tensor, v: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Whether the object-frame points ``(u, v)`` (radius 1) lie in ``shape``; a blob draws its outline from
    ``rng``."""
    if shape == "disc":
        return u**2 + v**2 <= 1
    if shape == "square":
        return torch.maximum(u.abs(), v.abs()) <= 0.8
    if shape == "triangle":
        return _polygon(u, v, 3)
    if shape == "pentagon":
        return _polygon(u, v, 5)
    if shape == "cross":
        return ((u.abs() <= 0.9) & (v.abs() <= 0.4)) | ((u.abs() <= 0.4) & (v.abs() <= 0.9))
    if shape == "blob":  # a radius that wobbles with the angle: 2nd-4th harmonics at random phases
        phi, r = torch.atan2(v, u), torch.full_like(u, 0.75)
        for k in (2, 3, 4):
            r = r + float(rng.uniform(0.05, 0.15)) * torch.cos(k * phi + float(rng.uniform(0, 2 * np.pi)))
        return u**2 + v**2 <= r**2
    raise ValueError(f"unknown shape {shape!r}")


def _sample(image: np.ndarray, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``image`` ``(H, W, 3)`` at ``(x, y)`` in [-1, 1] (its corners), edges repeated:
    ``(3, *x.shape)``."""
    img = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    grid = torch.stack([x, y], dim=-1).reshape(1, -1, 1, 2).float()
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(3, *x.shape)


def textures(clip: Clip, rng: np.random.Generator, *, frames: int = 8, size: int = 32) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """The object's texture (32 x 32 over its radius-1 square) and the background's (the frame plus room for its
    drift), drawn from ``rng`` (seeded by ``clip.seed``); the background has half the contrast, so the object
    stands out."""
    obj = texture(clip.object_texture, rng, 32)
    margin = int(np.ceil(max(abs(d) for d in clip.drift) * frames)) + 2
    return obj, 0.25 + 0.5 * texture(clip.background_texture, rng, size + 2 * margin)


def render(clip: Clip, *, frames: int = 8, size: int = 32, with_object: bool = True) -> np.ndarray:
    """The frames of ``clip``: ``(T, size, size, 3)`` uint8. ``with_object=False`` renders the background alone
    (what a test compares the frames with to find the object)."""
    rng = np.random.default_rng(clip.seed)
    obj, background = textures(clip, rng, frames=frames, size=size)
    bg_side = background.shape[0]
    margin = (bg_side - size) // 2
    # supersampled pixel centres, in output pixels: (T, S, S)
    s = size * SUPER
    px = (torch.arange(s, dtype=torch.float32) + 0.5) / SUPER
    py, px = torch.meshgrid(px, px, indexing="ij")
    t = torch.arange(frames, dtype=torch.float32)[:, None, None]
    bx = (px + margin + clip.drift[0] * t) / bg_side * 2 - 1
    by = (py + margin + clip.drift[1] * t) / bg_side * 2 - 1
    out = _sample(background, bx, by)  # (3, T, S, S)
    if with_object:
        cx, cy = clip.centre
        radius = torch.full_like(t, clip.radius)
        angle = torch.full_like(t, np.deg2rad(clip.angle))
        if clip.motion in MOVES:
            dx, dy = MOVES[clip.motion]
            cx, cy = cx + dx * clip.speed * t, cy + dy * clip.speed * t
        elif clip.motion in ZOOMS:
            radius = clip.radius * clip.speed ** (ZOOMS[clip.motion] * t)
        elif clip.motion in TURNS:
            angle = angle + TURNS[clip.motion] * np.deg2rad(clip.speed) * t
        else:
            raise ValueError(f"unknown motion {clip.motion!r}; known: {', '.join(CLASSES)}")
        # object frame: rotate the offset from the centre back by the angle, in units of the radius
        ox, oy = (px - cx) / radius, (py - cy) / radius
        cos, sin = torch.cos(angle), torch.sin(angle)
        u, v = cos * ox + sin * oy, -sin * ox + cos * oy
        mask = shape_mask(clip.shape, u, v, rng).to(out.dtype)
        out = out * (1 - mask) + _sample(obj, u, v) * mask
    out = F.avg_pool2d(out.float(), SUPER)  # (3, T, size, size): the average over each pixel's subsamples
    return (out.permute(1, 2, 3, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def draw(motion: str, *, split: str, index: int, rng: np.random.Generator, frames: int = 8, size: int = 32) -> Clip:
    """Random parameters of the ``index``-th clip of class ``motion`` in ``split``, with the object in the frame
    throughout."""
    radius = float(rng.uniform(0.17, 0.25) * size)
    span = frames - 1
    speed, angle = 0.0, float(rng.uniform(0, 360))
    centre = rng.uniform(size / 2 - size / 10, size / 2 + size / 10, 2)
    if motion in MOVES:
        speed = float(rng.uniform(1.2, 2.0) * size / 32)
        travel = np.asarray(MOVES[motion], dtype=float) * speed * span
        centre = centre - travel / 2  # the path is centred near the middle of the frame
    elif motion in ZOOMS:
        speed = float(rng.uniform(1.07, 1.11))  # 1.6-2.1 x over 8 frames
        radius = float(rng.uniform(0.11, 0.14) * size)
        if ZOOMS[motion] < 0:
            radius *= speed**span  # zooming out starts large
    elif motion in TURNS:
        speed = float(rng.uniform(10, 18))
    else:
        raise ValueError(f"unknown motion {motion!r}; known: {', '.join(CLASSES)}")
    a = rng.uniform(0, 2 * np.pi)
    drift = float(rng.uniform(0.3, 0.6)) * np.array([np.cos(a), np.sin(a)])
    return Clip(motion=motion, shape=str(rng.choice(SHAPES)), object_texture=str(rng.choice(OBJECT_TEXTURES)),
                background_texture=str(rng.choice(BACKGROUND_TEXTURES)),
                seed=(SPLITS[split], CLASSES.index(motion), index), radius=radius,
                centre=(float(centre[0]), float(centre[1])), speed=speed, angle=angle,
                drift=(float(drift[0]), float(drift[1])))


def build_object_set(root: Path, *, train_per_class: int = 32, test_per_class: int = 12, frames: int = 8,
                     size: int = 32) -> Path:
    """Build (once) the motion-objects set under ``root`` and return its folder (``root/motion-objects-vV-HASH``).

    Args:
        root: parent folder (the dataset cache).
        train_per_class: training clips per class.
        test_per_class: test clips per class (their textures are drawn from seeds apart from the training ones).
        frames: frames per clip (8 fps).
        size: frame side in pixels.
    """
    def write(part: Path) -> None:
        manifest: dict[str, dict[str, dict]] = {}
        for split, n in (("train", train_per_class), ("val", test_per_class)):
            rng = np.random.default_rng([VERSION, SPLITS[split]])
            manifest[split] = {}
            for name in CLASSES:
                for i in range(n):
                    clip = draw(name, split=split, index=i, rng=rng, frames=frames, size=size)
                    rel = f"{split}/{name}/{i:03d}.mp4"
                    write_video(part / rel, render(clip, frames=frames, size=size))
                    manifest[split][rel] = asdict(clip)
        write_text(json.dumps({"version": VERSION, "frames": frames, "size": size, "clips": manifest}, indent=1),
                   part / "clips.json")

    return synthetic_set(root, "motion-objects", version=VERSION,
                         params=(train_per_class, test_per_class, frames, size),
                         complete=lambda folder: (folder / "clips.json").is_file(), write=write)


def clips(folder: Path, split: str) -> dict[Path, Clip]:
    """The drawn parameters of every clip of ``split`` (``train`` or ``val``) in a built set, by file."""
    saved = json.loads((folder / "clips.json").read_text())["clips"][split]
    return {folder / rel: Clip(**{**c, "seed": tuple(c["seed"]), "centre": tuple(c["centre"]),
                                  "drift": tuple(c["drift"])}) for rel, c in saved.items()}
