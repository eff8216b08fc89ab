"""The single source datum (one image, or one video file) and the sampler that synthesizes batches of clips.

The paper writes 200,000 fake videos to disk: per clip an initial random crop and colour jitter of the image,
two random-resized-crop boxes, and 16 frames whose crop box moves linearly from the first box to the second
(a camera pan and zoom). Here every frame's box is one affine map from output pixels to source pixels, so a
batch of ``B`` clips of ``T`` frames is sampled with ``grid_sample`` over all ``B*T`` frames at once; frames
whose box shrinks a large region read from an anti-aliased pyramid level (mip-mapping), so they do not alias.
Options of ``[source]`` (off by default) make richer motion from the same image: a curved or rolling camera,
sprite layers cut from the image, an occluder and per-frame lighting drift
(:class:`~modalities.video.config.VideoSourceConfig`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from aip.cache import download, local_file
from aip.errors import AipError
from modalities.image.atlas import atlas, boxes_in, initial_crops, pyramid
from modalities.image.color import ColorJitter
from modalities.image.source import load_image_uri, stretch_levels
from modalities.video.config import VideoSourceConfig
from modalities.video.decode import VIDEO_EXTENSIONS, DecodeError, decode, frames_at


def is_video(uri: str) -> bool:
    """Whether ``uri`` names a video file (by its extension)."""
    return Path(uri.split("?")[0]).suffix.lower() in VIDEO_EXTENSIONS


def _resize_max_side(x: torch.Tensor, max_side: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    if max_side and max(h, w) > max_side:
        f = max_side / max(h, w)
        x = F.interpolate(x, size=(round(h * f), round(w * f)), mode="bilinear", antialias=True)
    return x


def load_source(cfg: VideoSourceConfig) -> torch.Tensor:
    """The source as ``(N, 3, H, W)`` float in [0, 1]: ``N = 1`` for an image, else the video's frames at
    ``cfg.fps`` (a video must last at least one clip: ``(frames - 1) * stride + 1`` frames)."""
    if not is_video(cfg.uri):
        return load_image_uri(cfg.uri, size=cfg.size, max_side=cfg.max_side, levels=cfg.levels)[None]
    path = download(cfg.uri) if cfg.uri.startswith(("http://", "https://")) else \
        local_file(cfg.uri, what="source video", accepts="a video file, an image, an http(s) URL or skimage:NAME")

    def every_frame_at_fps(times: np.ndarray, duration: float) -> np.ndarray:
        grid = np.arange(max(int(duration * cfg.fps), 1)) / cfg.fps
        return frames_at(times, grid)

    try:
        frames = decode(path, every_frame_at_fps)
    except DecodeError as e:
        raise AipError(f"source video could not be decoded ({e}); is it a valid video file?") from None
    if len(frames) < cfg.span:
        raise AipError(f"source video {path} has {len(frames)} frames at source.fps = {cfg.fps:g}, fewer than one "
                       f"clip needs ({cfg.span}); lower source.frames/source.stride or raise source.fps")
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255)  # (N, 3, H, W)
    if min(video.shape[-2:]) < cfg.size:
        raise AipError(f"source video is {video.shape[-1]}x{video.shape[-2]}, smaller than source.size = {cfg.size}")
    video = _resize_max_side(video, cfg.max_side).clamp_(0, 1)
    return (stretch_levels(video) if cfg.levels == "stretch" else video).contiguous()


class Camera(NamedTuple):
    """The camera of ``n`` clips, per frame: ``boxes`` ``(n, T, 4)`` (centre x, centre y, width, height in source
    pixels), ``angle`` ``(n, T)`` its roll in radians (``None`` when ``source.rotate`` is 0), ``index`` ``(n, T)``
    the source frame, and ``alpha`` ``(n, T, 1)`` the frame's place in the pan (0 at its first frame, 1 at its
    last)."""

    boxes: torch.Tensor
    angle: torch.Tensor | None
    index: torch.Tensor
    alpha: torch.Tensor


class ClipSampler:
    """Batches of synthetic clips ``(B, 3, T, S, S)`` in [0, 1] from one image or video, on ``device``.

    Per clip (parameters drawn independently per clip, from torch's global RNG): an initial square crop of
    ``init_crop`` x the short side at a random place; two random-resized-crop boxes inside it (area ``scale``,
    aspect ``ratio``); a pan of ``pan_frames`` frames whose box moves linearly from the first box to the
    second, of which ``frames`` frames ``stride`` apart from a random start form the clip; colour jitter with
    probability ``jitter_p``; horizontal/vertical flips of the whole clip. The options for richer motion
    (:class:`~modalities.video.config.VideoSourceConfig`: a curved or rolling camera path, sprite layers, an
    occluder, lighting drift) draw their random numbers after the paper's, so with them off a clip is the
    paper's bit for bit, and with only layers or lighting on (and jitter and flips off) the scene behind is too.
    Layers are composited in sampling coordinates (a pixel a layer covers reads the layer's place in the atlas
    instead of the scene's), so the scene and every layer are resampled by one ``grid_sample``; their edges are
    hard, like CutMix's.

    ``crop`` (optional): the training augmentation's square crop, as the range of its area fraction of the clip
    (``augment.short_side``'s scale and crop, :func:`~modalities.video.augment.crop_scale`), and ``crop_hflip``
    its horizontal flip probability: both are folded into each frame's box (and each layer's), so a training
    clip is resampled from the source once, at the output size, and the crop comes before AugMix rather than
    after it. Every random number is drawn on the device and nothing is read back to the host, so a CUDA graph
    can capture the sampler (:mod:`aip.graphs`).
    """

    def __init__(self, source: torch.Tensor, cfg: VideoSourceConfig, *, device: torch.device,
                 crop: tuple[float, float] | None = None, crop_hflip: float = 0.0) -> None:
        if source.dim() == 3:
            source = source[None]
        self.cfg = cfg
        self.device = device
        self.crop, self.crop_hflip = crop, crop_hflip
        self.capturable = True
        # only the atlas of the pyramid stays on the device (its level 0 is the source itself)
        levels = pyramid(source.to(device), cfg.size)
        self.count, _, self.height, self.width = source.shape  # (N, C, H, W)
        self.num_levels = len(levels)
        # every level of every frame in one atlas; its margins repeat the edges (grid_sample's border padding)
        packed, maps = atlas(levels, mode="replicate")  # (N, C, AH, AW)
        self.atlas_maps = maps.to(device)
        # a video is sampled as a volume (C, N, AH, AW) whose depth coordinate picks each frame's source frame
        self.atlas = packed if packed.shape[0] == 1 else packed.transpose(0, 1)[None].contiguous()
        self.jitter = ColorJitter(*cfg.jitter, p=cfg.jitter_p).to(device)
        # constants made once, not while sampling (a CUDA graph cannot capture a copy from the host): the output
        # pixel centres in grid coordinates ([-1, 1] across the frame) and the source's (width, height)
        self.lin = (torch.arange(cfg.size, device=device, dtype=torch.float32) + 0.5) / cfg.size * 2 - 1
        self.size_xy = torch.tensor([float(self.width), float(self.height)], device=device)

    def _boxes(self, n: int, count: int) -> torch.Tensor:
        """``count`` random-resized-crop boxes per clip inside one initial crop, ``(n, count, 4)`` as (centre x,
        centre y, width, height)."""
        cfg, dev = self.cfg, self.device
        H, W = self.height, self.width
        least = float(min(cfg.size, H, W))  # a view's size, but never more than the frame
        crop = initial_crops(n, height=H, width=W, init_crop=cfg.init_crop, least=least, device=dev)
        boxes = [torch.stack(boxes_in(*crop, scale=cfg.scale, ratio=cfg.ratio), -1) for _ in range(count)]
        return torch.stack(boxes, 1)

    def camera(self, n: int) -> Camera:
        """The camera of ``n`` random clips: per-frame boxes, roll, source frames and place in the pan."""
        cfg, dev = self.cfg, self.device
        ends = self._boxes(n, 3 if cfg.path == "curved" else 2)  # first, last (and the curve's control box)
        start = torch.randint(0, cfg.pan_frames - cfg.span + 1, (n,), device=dev)
        pos = start[:, None] + torch.arange(cfg.frames, device=dev)[None] * cfg.stride  # (n, T) index in the pan
        alpha = (pos.float() / max(cfg.pan_frames - 1, 1))[..., None]  # (n, T, 1)
        first, last = ends[:, None, 0], ends[:, None, 1]  # (n, 1, 4)
        if cfg.path == "curved":  # a quadratic Bezier curve pulled towards the third box: arcs, uneven speed
            boxes = (1 - alpha) ** 2 * first + 2 * alpha * (1 - alpha) * ends[:, None, 2] + alpha ** 2 * last
        else:
            boxes = (1 - alpha) * first + alpha * last  # the paper's linear camera motion, (n, T, 4)
        count = self.count
        if count == 1:
            index = torch.zeros_like(pos)
        else:  # a video: the clip also moves through its frames, from a random start
            offset = torch.randint(0, max(count - cfg.pan_frames, 0) + 1, (n,), device=dev)
            index = (offset[:, None] + pos).clamp_(max=count - 1)
        angle = None
        if cfg.rotate > 0:  # roll at the pan's first and last frame, turning evenly in between
            turn = torch.empty(n, 2, device=dev).uniform_(-cfg.rotate, cfg.rotate).deg2rad_()
            angle = (1 - alpha[..., 0]) * turn[:, :1] + alpha[..., 0] * turn[:, 1:]  # (n, T)
            # shrink the box until the rolled box's corners lie inside the unrolled one (inside the image)
            c, s = angle.cos().abs(), angle.sin().abs()
            w, h = boxes[..., 2], boxes[..., 3]
            k = torch.minimum(w / (w * c + h * s), h / (w * s + h * c))
            boxes = torch.cat([boxes[..., :2], boxes[..., 2:] * k[..., None]], -1)
        return Camera(boxes, angle, index, alpha)

    def frame_boxes(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame boxes ``(n, T, 4)`` and source frame indices ``(n, T)`` of ``n`` random clips."""
        cam = self.camera(n)
        return cam.boxes, cam.index

    def _layers(self, cam: Camera, count: int, scale: tuple[float, float], *,
                aspect: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` layers per clip, each a patch of the image moving over the frame. Returns the source box
        that maps the whole frame onto each layer's patch, ``(n, count, T, 4)`` as the camera's boxes, and the
        layer's place in the frame, ``(n, count, T, 4)`` as (centre x, centre y, half width, half height) in grid
        coordinates ([-1, 1] across the frame). ``aspect``: the two sides are drawn apart (else square)."""
        n, dev = cam.boxes.shape[0], self.device
        a = cam.alpha[:, None]  # (n, 1, T, 1)
        half = torch.empty(n, count, 2, 2 if aspect else 1, device=dev).uniform_(*scale).expand(-1, -1, -1, 2)
        centre = torch.rand(n, count, 2, 2, device=dev) * 2 - 1  # (n, count, first/last, x/y)
        c = (1 - a) * centre[:, :, :1] + a * centre[:, :, 1:]  # (n, count, T, 2)
        f = (1 - a) * half[:, :, :1] + a * half[:, :, 1:]
        # the patch shows the image at the scale of the clip's first frame when the layer has its first size
        patch = half[:, :, 0] * cam.boxes[:, None, 0, 2:]  # (n, count, 2) source pixels
        centre_src = patch / 2 + torch.rand(n, count, 2, device=dev) * (self.size_xy - patch)  # inside the image
        # frame point u in [-1, 1] shows source point centre_src + (u - c) * patch / (2 f)
        scale_src = patch[:, :, None] / f  # (n, count, T, 2): source pixels across the whole frame
        boxes = torch.cat([centre_src[:, :, None] - c * scale_src / 2, scale_src], -1)
        return boxes, torch.cat([c, f], -1)

    def _inside(self, place: torch.Tensor, shape: str) -> torch.Tensor:
        """Which output pixels ``(n, L, T, S, S)`` layers at ``place`` ``(n, L, T, 4)`` cover: those whose centre
        lies in the layer's disc (an ellipse when its sides differ) or box."""
        lin = self.lin
        cx, cy, hx, hy = (v[..., None] for v in place.unbind(-1))  # each (n, L, T, 1)
        if shape == "box":
            return ((lin - cx).abs() <= hx)[..., None, :] & ((lin - cy).abs() <= hy)[..., :, None]
        return (((lin - cx) / hx)[..., None, :] ** 2 + ((lin - cy) / hy)[..., :, None] ** 2) <= 1

    def _lighting(self, clips: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Per-frame gains of red, green, blue and contrast (about the frame's mean), each blended smoothly from
        its value at the pan's first frame to its value at the last."""
        x, n = self.cfg.photometric, clips.shape[0]
        ends = torch.empty(n, 2, 4, device=self.device).uniform_(1 - x, 1 + x)  # (n, first/last, r/g/b/contrast)
        a = alpha * alpha * (3 - 2 * alpha)  # smoothstep: starts and stops gently, (n, T, 1)
        v = ((1 - a) * ends[:, None, 0] + a * ends[:, None, 1]).transpose(1, 2)[..., None, None]  # (n, 4, T, 1, 1)
        mean = clips.mean(dim=(1, 3, 4), keepdim=True)  # (n, 1, T, 1, 1)
        gain, contrast = v[:, :3], v[:, 3:]
        # ((x - mean) * contrast + mean) * gain as one multiply-add per pixel
        return torch.addcmul(mean * (1 - contrast) * gain, clips, contrast * gain).clamp_(0, 1)

    def _coords(self, boxes: torch.Tensor, angle: torch.Tensor | None,
                sign: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The atlas coordinates x and y of ``M`` frames' pixels: per frame a box ``(M, 4)``, its roll ``(M,)``
        (or ``None``) and ``sign`` ``(M,)`` (-1 mirrors it left to right). Without roll x is ``(M, 1, S)`` and y
        ``(M, S, 1)`` (each column reads one source column, each row one source row), else both ``(M, S, S)``."""
        s, H, W = self.cfg.size, self.height, self.width
        cx, cy, w, h = boxes.unbind(-1)
        # source pixels per output pixel decides the pyramid level, and its place in the atlas
        level = torch.clamp(torch.floor(torch.log2((torch.maximum(w, h) / s).clamp(min=1.0))), 0,
                            self.num_levels - 1).long()
        sx, sy, tx, ty = (v[:, None, None] for v in self.atlas_maps[level].to(boxes.dtype).unbind(-1))
        dx = self.lin[None] * (sign * w)[:, None] / 2  # (M, S): offsets along the frame's axes, source pixels
        dy = self.lin[None] * h[:, None] / 2
        if angle is None:
            px, py = (cx[:, None] + dx)[:, None, :], (cy[:, None] + dy)[:, :, None]
        else:
            cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
            px = cx[:, None, None] + dx[:, None, :] * cos - dy[:, :, None] * sin  # (M, S, S)
            py = cy[:, None, None] + dx[:, None, :] * sin + dy[:, :, None] * cos
        return (px / W * 2 - 1) * sx + tx, (py / H * 2 - 1) * sy + ty

    def _resample(self, grid: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``M`` frames ``(M, C, S, S)`` read from the atlas at ``grid`` ``(M, S, S, 2)``, from source frames
        ``index`` ``(M,)``."""
        s, count = self.cfg.size, self.count
        if count == 1:  # one image: every frame of every clip samples the same atlas
            return F.grid_sample(self.atlas.expand(len(grid), -1, -1, -1), grid, mode="bilinear",
                                 padding_mode="border", align_corners=False)
        # a video: a depth coordinate at a frame's centre samples exactly that frame
        z = (2 * index.to(grid.dtype) + 1) / count - 1
        grid = torch.cat([grid, z[:, None, None, None].expand(-1, s, s, 1)], -1)[None]  # (1, M, S, S, 3)
        return F.grid_sample(self.atlas, grid, mode="bilinear", padding_mode="border",
                             align_corners=False)[0].transpose(0, 1)  # (M, C, S, S)

    def _cover(self, gx: torch.Tensor, gy: torch.Tensor, cam: Camera, sign: torch.Tensor,
               crop: tuple[torch.Tensor, torch.Tensor] | None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Put the layers in front of the scene, back to front: sprites, then the occluder. A pixel a layer covers
        reads the layer's atlas coordinates instead of the scene's (``gx``, ``gy``: ``(n, T, S or 1, S or 1)``),
        so one resampling draws the scene and every layer. Returns the new coordinates, the pixels
        ``(n, T, S, S)`` a flat occluder paints (``None`` without occluders) and its colour ``(n, 3)``."""
        cfg, dev, (n, t) = self.cfg, self.device, gx.shape[:2]
        layers = []  # (source boxes, place, shape, which clips show it (None: all))
        if cfg.sprites > 0:
            layers.append((*self._layers(cam, cfg.sprites, cfg.sprite_scale, aspect=False), cfg.sprite_shape, None))
        cover = colour = None
        if cfg.occlusion_p > 0:
            layers.append((*self._layers(cam, 1, cfg.occlusion_scale, aspect=True), "box",
                           torch.rand(n, device=dev) < cfg.occlusion_p))
            flat = torch.rand(n, device=dev) < 0.5  # a flat colour, else a patch of the image
            colour = torch.rand(n, 3, device=dev)
        for src, place, shape, shown in layers:  # (n, L, T, 4) each
            if crop is not None:  # the crop's frame point u shows the whole frame's point 2 off + f u
                off, f = crop[0][:, None, None], crop[1][:, None, None]
                src = torch.cat([src[..., :2] + off * src[..., 2:], src[..., 2:] * f], -1)
                place = torch.cat([(place[..., :2] - 2 * off) / f, place[..., 2:] / f], -1)
            place = torch.cat([place[..., :1] * sign[:, None, None, None], place[..., 1:]], -1)  # mirrored too
            num = src.shape[1]
            lx, ly = self._coords(src.reshape(-1, 4), None, sign[:, None].expand(n, num * t).reshape(-1))
            lx, ly = lx.view(n, num, t, 1, -1), ly.view(n, num, t, -1, 1)
            inside = self._inside(place, shape)  # (n, L, T, S, S)
            if shown is not None:  # the occluder
                inside = inside & shown[:, None, None, None, None]
                cover = inside[:, 0] & flat[:, None, None, None]
            for k in range(num):
                gx, gy = torch.where(inside[:, k], lx[:, k], gx), torch.where(inside[:, k], ly[:, k], gy)
        return gx, gy, cover, colour

    @torch.no_grad()
    def sample(self, batch_size: int) -> torch.Tensor:
        """``(B, 3, frames, size, size)`` clips in [0, 1] on the sampler's device."""
        cfg, n, s, t, dev = self.cfg, batch_size, self.cfg.size, self.cfg.frames, self.device
        cam = self.camera(n)
        boxes, angle = cam.boxes, cam.angle
        sign = torch.ones(n, device=dev)  # +1, or -1 for a horizontally flipped clip
        if self.crop is not None:  # the same square sub-box of every frame's box, per clip
            f = torch.empty(n, 1, device=dev).uniform_(*self.crop).sqrt_()  # side, as a fraction of the clip's
            off = torch.rand(n, 2, device=dev) * (1 - f) + f / 2 - 0.5  # its centre, from the clip's centre
            shift = off[:, None] * boxes[..., 2:]  # (n, T, 2) along the frame's axes
            if angle is not None:  # ... which a rolled camera turns
                cos, sin = angle.cos(), angle.sin()
                shift = torch.stack([shift[..., 0] * cos - shift[..., 1] * sin,
                                     shift[..., 0] * sin + shift[..., 1] * cos], -1)
            boxes = torch.cat([boxes[..., :2] + shift, boxes[..., 2:] * f[:, None]], -1)
        if self.crop_hflip > 0:
            flip = torch.rand(n, device=dev) < self.crop_hflip
            sign = torch.where(flip, -sign, sign)
        gx, gy = self._coords(boxes.reshape(n * t, 4), None if angle is None else angle.reshape(n * t),
                              sign[:, None].expand(n, t).reshape(n * t))
        gx, gy = gx.view(n, t, *gx.shape[1:]), gy.view(n, t, *gy.shape[1:])
        gx, gy, cover, colour = self._cover(gx, gy, cam, sign, (off, f) if self.crop is not None else None)
        grid = torch.stack([gx.expand(n, t, s, s), gy.expand(n, t, s, s)], -1).view(n * t, s, s, 2)
        frames = self._resample(grid, cam.index.reshape(n * t)).view(n, t, -1, s, s)
        if cover is not None:  # a flat occluder paints its pixels its colour
            frames = torch.where(cover[:, :, None], colour[:, None, :, None, None], frames)
        clips = frames.transpose(1, 2)  # (B, C, T, S, S)
        if cfg.photometric > 0:
            clips = self._lighting(clips, cam.alpha)
        clips = self.jitter(clips)
        for p, dim in ((cfg.hflip, -1), (cfg.vflip, -2)):
            if p > 0:
                flip = torch.rand(n, device=self.device) < p
                clips = torch.where(flip[:, None, None, None, None], clips.flip(dim), clips)
        return clips.clamp_(0, 1).contiguous()
