"""The single source image and the sampler that cuts batches of views ("patches") from it on the device.

The paper pre-generates patches to disk with a per-image PIL pipeline (initial crop, random-resized crop at
sqrt(2) x the size, rotation and shear, centre crop, colour jitter). Here the whole geometric chain of every
view is composed into ONE affine map from output pixels to source pixels, so a batch costs a single
``grid_sample`` at the output size. Views that shrink a large region are read from a pre-computed
anti-aliased pyramid level (mip-mapping, :mod:`modalities.image.atlas`), so small views do not alias. Every
random number is drawn on the device and nothing is read back to the host, so a CUDA graph can capture the
sampler (:mod:`aip.graphs`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aip.cache import download, local_file
from aip.errors import AipError, UsageError
from modalities.image.atlas import atlas, boxes_in, fit_boxes, initial_crops, pyramid
from modalities.image.color import ColorJitter
from modalities.image.config import ImageAugmentConfig, ImageSourceConfig
from modalities.image.inputs import open_image

SYNTHETIC = ("noise", "dead_leaves", "fractal")


# ----------------------------------------------------------------------------------------------- loading
def _to_tensor(array: np.ndarray) -> torch.Tensor:
    """HWC/HW uint8 or float array -> (3, H, W) float in [0, 1]."""
    a = np.array(array)  # a writable copy
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.ndim != 3 or a.shape[-1] not in (3, 4):
        raise AipError(f"source image has shape {a.shape}; expected an RGB or grayscale picture")
    a = a[..., :3]
    t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)
    return t.float() / 255.0 if t.dtype == torch.uint8 else t.float().clamp(0, 1)


ACCEPTS = "an image file, an http(s) URL, skimage:NAME, synthetic:noise/dead_leaves or dataset:train"
#: scikit-image's data functions that return one picture (others return paths, several arrays or nothing)
SKIMAGE_NOT_PHOTOS = ("data_dir", "download_all", "file_hash", "lbp_frontal_face_cascade_filename", "lfw_subset",
                      "stereo_motorcycle")


def check_source(uri: str, *, what: str = "source image") -> None:
    """Fail early, with one line, on a ``source.uri`` that cannot work: an unknown ``synthetic:``/``skimage:``
    name, or a local path that is missing or a directory (URLs are checked when they are downloaded)."""
    scheme, _, name = uri.partition(":")
    if uri.startswith(("http://", "https://")) or uri == "dataset:train":
        return
    if scheme == "synthetic":
        if name not in SYNTHETIC:
            raise UsageError(f"unknown synthetic source {uri!r}; known: "
                             f"{', '.join(f'synthetic:{s}' for s in SYNTHETIC)}")
    elif scheme == "skimage":
        _skimage_loader(name)
    elif scheme == "dataset":
        raise UsageError(f"unknown source {uri!r}; the only dataset source is dataset:train")
    else:
        local_file(uri, what=what, accepts=ACCEPTS)


def _skimage_loader(name: str):
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if name in SKIMAGE_NOT_PHOTOS:
        raise UsageError(f"skimage:{name} is not one image; pick a photo such as skimage:astronaut or skimage:chelsea")
    if name.startswith("_") or name not in skimage.data.__all__ or not callable(loader):
        known = "astronaut, camera, chelsea, coffee, hubble_deep_field, rocket, immunohistochemistry, ..."
        raise UsageError(f"skimage:{name} is not a scikit-image photo; try one of {known}")
    return loader


def _read_file(path: Path) -> torch.Tensor:
    path = local_file(str(path), what="source image", accepts=ACCEPTS)
    return _to_tensor(np.asarray(open_image(path, "RGB", what="source image")))


def _skimage(name: str) -> torch.Tensor:
    loader = _skimage_loader(name)
    try:
        array = loader()
    except Exception as e:  # photos not shipped in the wheel need pooch and a network
        raise AipError(f"skimage:{name} could not be loaded ({type(e).__name__}: {e}); pick a bundled photo") from None
    if not isinstance(array, np.ndarray):
        raise UsageError(f"skimage:{name} is not one image (it gives a {type(array).__name__}); pick a photo such "
                         "as skimage:astronaut or skimage:chelsea")
    return _to_tensor(array)


def dead_leaves(side: int, *, seed: int, r_min: float = 0.002, r_max: float = 0.25) -> torch.Tensor:
    """A dead-leaves image: occluding discs of random colour with radii ~ r^-3 (scale-invariant statistics)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((side, side, 3), np.float32)
    filled = np.zeros((side, side), bool)
    yy, xx = np.mgrid[0:side, 0:side]
    lo, hi = r_min * side, r_max * side
    for _ in range(20_000):
        # inverse-CDF sample of p(r) ~ r^-3 on [lo, hi]
        u = rng.random()
        r = (lo**-2 - u * (lo**-2 - hi**-2)) ** -0.5
        cx, cy = rng.random(2) * side
        x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, side)
        y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, side)
        if x0 >= x1 or y0 >= y1:
            continue
        disc = (xx[y0:y1, x0:x1] - cx) ** 2 + (yy[y0:y1, x0:x1] - cy) ** 2 <= r * r
        new = disc & ~filled[y0:y1, x0:x1]  # later discs lie *under* earlier ones
        img[y0:y1, x0:x1][new] = rng.random(3)
        filled[y0:y1, x0:x1] |= new
        if filled.all():
            break
    return torch.from_numpy(img).permute(2, 0, 1).contiguous()


def fractal(side: int, *, seed: int, points: int = 0) -> torch.Tensor:
    """A random iterated-function-system fractal (the FractalDB idea, Kataoka et al., ACCV 2020), in colour on
    black.

    2 to 4 random affine maps ``x -> A x + b``, each a contraction (its matrix's largest singular value is
    drawn in [0.3, 0.8]); the chaos game (at every step one map, chosen with a probability proportional to
    its area factor |det A|, is applied to the current point; 1,000 chains at once) traces the attractor from
    ``points`` points (default: one per pixel). Each pixel takes the colour of the maps that reached it,
    weighted by how often; brightness follows the log of the hit count.
    """
    points = points or side * side
    rng = np.random.default_rng(seed)
    n_maps = int(rng.integers(2, 5))
    mats, shifts = [], rng.uniform(-1, 1, (n_maps, 2))
    for _ in range(n_maps):
        u, _, vt = np.linalg.svd(rng.normal(size=(2, 2)))
        sv = np.sort(rng.uniform(0.3, 0.8, 2))[::-1]
        mats.append(u @ np.diag(sv) @ vt)
    area = np.array([abs(np.linalg.det(m)) for m in mats])
    mats, chains, burn_in = np.stack(mats), 1000, 20
    steps = burn_in + -(-points // chains)
    # many independent chains at once (each is sequential: a point depends on the one before)
    choice = rng.choice(n_maps, size=(steps, chains), p=area / area.sum())
    colours = rng.uniform(0.2, 1.0, (n_maps, 3))
    p = rng.uniform(-1, 1, (chains, 2))
    trace = []
    for k in choice:
        p = np.einsum("nij,nj->ni", mats[k], p) + shifts[k]
        trace.append(p)
    xy = np.concatenate(trace[burn_in:])  # the first points have not reached the attractor yet
    choice = choice[burn_in:].reshape(-1)
    lo, hi = xy.min(0), xy.max(0)
    pix = ((xy - lo) / np.maximum(hi - lo, 1e-9) * (side * 0.9 - 1) + side * 0.05).astype(np.int64)
    flat = pix[:, 1] * side + pix[:, 0]
    hits = np.bincount(flat, minlength=side * side).astype(np.float32)
    rgb = np.stack([np.bincount(flat, weights=colours[choice, c], minlength=side * side) for c in range(3)], -1)
    rgb = rgb / np.maximum(hits, 1)[:, None] * (np.log1p(hits) / np.log1p(hits.max()))[:, None]
    img = rgb.reshape(side, side, 3).astype(np.float32)
    return torch.from_numpy(img).permute(2, 0, 1).clamp(0, 1).contiguous()


def load_image_uri(uri: str, *, size: int, channels: int = 3, max_side: int = 0, synthetic_side: int = 1024,
                   seed: int = 0, levels: str = "keep") -> torch.Tensor:
    """The picture at ``uri`` as ``(channels, H, W)`` float in [0, 1], its longer side at most ``max_side``.

    Args:
        uri: a file path, an ``http(s)`` URL (downloaded once into the cache), ``skimage:NAME``, or
            ``synthetic:noise`` / ``synthetic:dead_leaves`` / ``synthetic:fractal`` (a square of
            ``synthetic_side`` pixels from ``seed``).
        size: the smallest short side accepted (the views' side); a smaller picture is an error.
        channels: 3 (RGB) or 1 (luma).
        max_side: a larger picture is scaled down (anti-aliased) to this longer side; 0 keeps it as it is.
        levels: ``"stretch"``: :func:`stretch_levels` (not for synthetic pictures); ``"keep"``: as it is.
    """
    if uri.startswith("synthetic:"):
        kind = uri.split(":", 1)[1]
        if kind == "noise":
            g = torch.Generator().manual_seed(seed)
            img = torch.rand(3, synthetic_side, synthetic_side, generator=g)
        elif kind == "dead_leaves":
            img = dead_leaves(synthetic_side, seed=seed)
        elif kind == "fractal":
            img = fractal(synthetic_side, seed=seed)
        else:
            known = ", ".join(f"synthetic:{s}" for s in SYNTHETIC)
            raise UsageError(f"unknown synthetic source {uri!r}; known: {known}")
    elif uri.startswith("skimage:"):
        img = _skimage(uri.split(":", 1)[1])
    elif uri.startswith(("http://", "https://")):
        img = _read_file(download(uri))
    else:
        img = _read_file(Path(uri).expanduser())
    if channels == 1:
        img = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]).unsqueeze(0)
    h, w = img.shape[-2:]
    if min(h, w) < size:
        raise AipError(f"source image is {w}x{h}, smaller than source.size = {size}; use a larger image")
    if float((img.amax(dim=(1, 2)) - img.amin(dim=(1, 2))).max()) < 2 / 255:  # every view would be that colour
        colour = "/".join(f"{float(c) * 255:.0f}" for c in img.mean(dim=(1, 2)))
        raise AipError(f"source image {uri} is one flat colour (every pixel {colour} of 255"
                       f"{' in grey' if channels == 1 else ''}); use a picture with something in it")
    if max_side and max(h, w) > max_side:
        f = max_side / max(h, w)
        img = F.interpolate(img[None], size=(round(h * f), round(w * f)), mode="bilinear", antialias=True)[0]
    if levels == "stretch" and not uri.startswith("synthetic:"):
        img = stretch_levels(img)
    return img.clamp(0, 1).contiguous()


#: the brightness percentiles that :func:`stretch_levels` maps to black and white: a few specular highlights or
#: dead pixels do not decide the exposure
LEVEL_PERCENTILES = (0.5, 99.5)


def stretch_levels(img: torch.Tensor) -> torch.Tensor:
    """``img`` (..., C, H, W) in [0, 1] (a picture, or a video's frames) with its brightness's
    :data:`LEVEL_PERCENTILES` mapped to 0 and 1, by one linear map for every channel and frame (hues stay;
    brightness is the luma of an RGB picture). Where the percentiles lie closer than 2/255 (a few pixels on a
    flat field) the minimum and maximum are stretched instead; a flat picture is returned as it is."""
    c = img.shape[-3]
    luma = img.select(-3, 0) if c == 1 else (0.299 * img.select(-3, 0) + 0.587 * img.select(-3, 1)
                                             + 0.114 * img.select(-3, 2))
    flat = luma.flatten()
    flat = flat[:: max(1, flat.numel() // 1_000_000)].numpy()  # a strided sample: percentiles of ~1M pixels
    lo, hi = (float(v) for v in np.percentile(flat, LEVEL_PERCENTILES))
    if hi - lo < 2 / 255:
        lo, hi = float(img.amin()), float(img.amax())
    if hi - lo < 1e-6:
        return img
    return ((img - lo) / (hi - lo)).clamp_(0, 1)


def load_image(cfg: ImageSourceConfig) -> torch.Tensor:
    """The image recipe's source image (:func:`load_image_uri` with the ``[source]`` section's settings)."""
    return load_image_uri(cfg.uri, size=cfg.size, channels=cfg.channels, max_side=cfg.max_side, levels=cfg.levels,
                          synthetic_side=cfg.synthetic_side, seed=cfg.seed)


# ---------------------------------------------------------------------------------------------- sampling
class ImageViewSampler:
    """Batches of random views of one image: the paper's patch generator, batched, on ``device``.

    Per view (all parameters drawn independently per sample): initial random crop of ``init_crop`` x the
    short side; random-resized-crop box of ``scale`` x that area with aspect ratio in ``ratio``; rotation
    and shear; centre crop to ``size``; colour jitter with probability ``jitter_p``; vertical flip.

    ``crop`` (optional): the training augmentation's geometric part (random-resized or padded crop and
    horizontal flip, ``augment.crop``/``crop_scale``/``pad``/``hflip``), folded into the same map, so a
    training view is resampled from the image once, at the output size, instead of twice. The whole chain
    (output pixel -> augmentation crop -> flip -> zoom-out -> rotation/shear -> box -> source pixel) is one
    affine map per view: one ``grid_sample`` from the level of an anti-aliasing pyramid that matches the view's
    scale, with pixels outside the sheared box (or the zoomed-out view, or the padding) black.
    """

    def __init__(self, image: torch.Tensor, cfg: ImageSourceConfig, *, device: torch.device,
                 crop: ImageAugmentConfig | None = None) -> None:
        self.cfg = cfg
        self.crop = crop
        self.device = device
        # every random number is drawn on the device and nothing is read back: a CUDA graph can capture it
        self.capturable = True
        # only the atlas of the pyramid stays on the device (its level 0 is the image itself)
        levels = pyramid(image.to(device), cfg.size)
        self.channels, self.height, self.width = image.shape[-3:]
        self.num_levels = len(levels)
        self.atlas, maps = atlas(levels)  # (1, C, AH, AW); (levels, 4)
        self.atlas_maps = maps.to(device)
        self.jitter = ColorJitter(*cfg.jitter, p=cfg.jitter_p).to(device)
        # output pixel centres in [-1, 1], exactly antisymmetric (a flipped view is exactly a flipped view)
        half = (torch.arange(cfg.size, device=device, dtype=torch.float32) + 0.5) / cfg.size * 2 - 1
        self.lin = (half - half.flip(0)) / 2
        self.px = torch.tensor([self.width / cfg.size, self.height / cfg.size], device=device)  # per output px

    def _boxes(self, n: int) -> tuple[torch.Tensor, ...]:
        """Per-sample random-resized-crop boxes (centre x, centre y, width, height) in source pixels."""
        cfg, dev = self.cfg, self.device
        crop = initial_crops(n, height=self.height, width=self.width, init_crop=cfg.init_crop, least=float(cfg.size),
                             device=dev)
        return boxes_in(*crop, scale=cfg.scale, ratio=cfg.ratio)

    def _theta(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-view 2x2 maps from output coordinates to box coordinates (both in [-1, 1])."""
        cfg, dev = self.cfg, self.device
        rot = torch.deg2rad(torch.empty(n, device=dev).uniform_(-cfg.degrees, cfg.degrees))
        shear = torch.deg2rad(torch.empty(n, device=dev).uniform_(-cfg.shear, cfg.shear))
        cos, sin, tan = torch.cos(rot), torch.sin(rot), torch.tan(shear)
        # forward map box -> rotated/sheared frame is M = R @ S with S = [[1, tan], [0, 1]];
        # the centre crop of size/(sqrt(2) size) scales output coords by 1/sqrt(2); we need M^-1 / sqrt(2)
        # M = [[cos, cos tan - sin], [sin, sin tan + cos]] has determinant 1: its inverse is its adjugate
        inv = torch.stack([torch.stack([sin * tan + cos, sin - cos * tan], -1), torch.stack([-sin, cos], -1)], -2)
        inv = inv / math.sqrt(2.0)
        return inv, rot

    def _crop_map(self, n: int) -> tuple[torch.Tensor, bool]:
        """The augmentation's crop + horizontal flip as ``(B, 3, 3)`` maps output -> view coords; whether the
        crop can leave the view (padding, to be black)."""
        a = _affine(n, self.device)
        if self.crop is None:
            return a, False
        c, dev = self.crop, self.device
        padded = False
        if c.crop == "rrc":  # a box of area crop_scale x the view, aspect 3/4..4/3, inside the view
            one = torch.ones(n, device=dev)
            fw, fh = fit_boxes(one, one, one, scale=c.crop_scale, ratio=(3 / 4, 4 / 3))
            a[:, 0, 0], a[:, 1, 1] = fw, fh
            a[:, 0, 2] = (torch.rand(n, device=dev) * 2 - 1) * (1 - fw)
            a[:, 1, 2] = (torch.rand(n, device=dev) * 2 - 1) * (1 - fh)
        elif c.crop == "pad" and c.pad > 0:  # shift by whole pixels within the zero padding
            s = self.cfg.size
            shift = torch.randint(-c.pad, c.pad + 1, (n, 2), device=dev).float() * 2 / s
            a[:, 0, 2], a[:, 1, 2] = shift[:, 0], shift[:, 1]
            padded = True
        if c.hflip > 0:
            flip = torch.rand(n, device=dev) < c.hflip
            a[:, 0, 0] = torch.where(flip, -a[:, 0, 0], a[:, 0, 0])
        return a, padded

    def _apply(self, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two coordinates ``(B, S, S)`` of the affine maps ``m`` ``(B, 3, 3)`` at every output pixel; one
        broadcast add per coordinate (the column terms are summed on the small ``(B, 1, S)`` tensors first)."""
        x, y = self.lin[None, None, :], self.lin[None, :, None]
        u = (m[:, 0, 0, None, None] * x + m[:, 0, 2, None, None]) + m[:, 0, 1, None, None] * y
        v = (m[:, 1, 0, None, None] * x + m[:, 1, 2, None, None]) + m[:, 1, 1, None, None] * y
        return u, v

    def _grid(self, m: torch.Tensor) -> torch.Tensor:
        """``grid_sample`` coordinates ``(B, S, S, 2)`` of the maps ``m``, built by one broadcast add."""
        x, y = self.lin[None, None, :, None], self.lin[None, :, None, None]
        cols = m[:, None, None, :2, 0] * x + m[:, None, None, :2, 2]  # (B, 1, S, 2)
        rows = m[:, None, None, :2, 1] * y  # (B, S, 1, 2)
        return cols + rows

    @staticmethod
    def _inside(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u.abs_() <= 1) & (v.abs_() <= 1)

    @torch.no_grad()
    def sample(self, batch_size: int) -> torch.Tensor:
        """``(B, C, size, size)`` views in [0, 1] on the sampler's device."""
        cfg, n, dev = self.cfg, batch_size, self.device
        H, W = self.height, self.width
        cx, cy, w, h = self._boxes(n)
        inv, _ = self._theta(n)
        crop, padded = self._crop_map(n)  # output -> view
        zoom = None
        if cfg.zoom_out_p > 0:  # shrink the view by z and move it by t on a black canvas: p -> (p - t) / z
            z = torch.empty(n, device=dev).uniform_(*cfg.zoom_out)
            z = torch.where(torch.rand(n, device=dev) < cfg.zoom_out_p, z, torch.ones_like(z))
            t = (torch.rand(n, 2, device=dev) * 2 - 1) * (1 - z)[:, None]
            zoom = _affine(n, dev)
            zoom[:, 0, 0] = zoom[:, 1, 1] = 1 / z
            zoom[:, :2, 2] = -t / z[:, None]
        view = crop
        if cfg.vflip > 0:  # the raw view is flipped before the augmentation crops it: negate the view's y
            flip = torch.where(torch.rand(n, device=dev) < cfg.vflip, -1.0, 1.0)
            view = view * torch.stack([torch.ones_like(flip), flip, torch.ones_like(flip)], -1)[:, :, None]
        if zoom is not None:
            view = zoom @ view
        rot = _affine(n, dev)
        rot[:, :2, :2] = inv
        box = rot @ view  # output -> box coords (black outside [-1, 1]^2: the sheared corners)
        to_grid = _affine(n, dev)  # box coords -> grid_sample coords of the source
        to_grid[:, 0, 0], to_grid[:, 0, 2] = w / W, cx / W * 2 - 1
        to_grid[:, 1, 1], to_grid[:, 1, 2] = h / H, cy / H * 2 - 1
        full = to_grid @ box
        # source pixels per output pixel (longest axis of the map's Jacobian) picks the pyramid level
        jac = full[:, :2, :2] * self.px[None, :, None]
        footprint = jac.norm(dim=1).amax(1)
        level = torch.clamp(torch.floor(torch.log2(footprint.clamp(min=1.0))), 0, self.num_levels - 1).long()
        # ... and the level's place in the atlas: one map from output pixels to atlas coordinates per view
        sx, sy, tx, ty = self.atlas_maps[level].to(full.dtype).unbind(-1)
        to_atlas = _affine(n, dev)
        to_atlas[:, 0, 0], to_atlas[:, 0, 2], to_atlas[:, 1, 1], to_atlas[:, 1, 2] = sx, tx, sy, ty
        full = to_atlas @ full
        grid = self._grid(full)  # (B, S, S, (x, y))
        outside = ~self._inside(*self._apply(box))
        if zoom is not None:
            outside |= ~self._inside(*self._apply(view))
        if padded:
            outside |= ~self._inside(*self._apply(crop))
        grid[..., 0].masked_fill_(outside, 4.0)  # far outside the atlas: grid_sample's zero padding: black
        out = F.grid_sample(self.atlas.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)
        # bilinear taps of an image in [0, 1] stay in [0, 1] (up to rounding), and the jitter clamps
        return self.jitter(out) if self.jitter.p > 0 else out.clamp_(0, 1)


def _affine(n: int, device: torch.device) -> torch.Tensor:
    """``n`` identity maps ``(n, 3, 3)`` in homogeneous 2-D coordinates."""
    return torch.eye(3, device=device).repeat(n, 1, 1)
