"""The single source datum (one image, or one video file) and the sampler that synthesizes batches of clips.

The paper writes 200,000 fake videos to disk: per clip an initial random crop and colour jitter of the image,
two random-resized-crop boxes, and 16 frames whose crop box moves linearly from the first box to the second
(a camera pan and zoom). Here every frame's box is one affine map from output pixels to source pixels, so a
batch of ``B`` clips of ``T`` frames is sampled with ``grid_sample`` over all ``B*T`` frames at once; frames
whose box shrinks a large region read from an anti-aliased pyramid level (mip-mapping), so they do not alias.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aip.cache import download, local_file
from aip.errors import AipError
from modalities.image.atlas import atlas, fit_boxes, pyramid
from modalities.image.color import ColorJitter
from modalities.image.source import load_image_uri
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
        return load_image_uri(cfg.uri, size=cfg.size, max_side=cfg.max_side)[None]
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
    return _resize_max_side(video, cfg.max_side).clamp_(0, 1).contiguous()


class ClipSampler:
    """Batches of synthetic clips ``(B, 3, T, S, S)`` in [0, 1] from one image or video, on ``device``.

    Per clip (parameters drawn independently per clip, from torch's global RNG): an initial square crop of
    ``init_crop`` x the short side at a random place; two random-resized-crop boxes inside it (area ``scale``,
    aspect ``ratio``); a pan of ``pan_frames`` frames whose box moves linearly from the first box to the
    second, of which ``frames`` frames ``stride`` apart from a random start form the clip; colour jitter with
    probability ``jitter_p``; horizontal/vertical flips of the whole clip.

    ``crop`` (optional): the training augmentation's square crop, as the range of its area fraction of the clip
    (``augment.short_side``'s scale and crop, :func:`~modalities.video.augment.crop_scale`), and ``crop_hflip``
    its horizontal flip probability: both are folded into each frame's box, so a training clip is resampled
    from the source once, at the output size, and the crop comes before AugMix rather than after it.
    Every random number is drawn on the device and nothing is read back to the host, so a CUDA graph can
    capture the sampler (:mod:`aip.graphs`).
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

    def _box_pair(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Two random-resized-crop boxes per clip, ``(n, 2, 4)`` as (centre x, centre y, width, height)."""
        cfg, dev = self.cfg, self.device
        H, W = self.height, self.width
        if cfg.init_crop > 0:  # a square crop of init_crop x the short side, at a random place
            side = max(cfg.init_crop * min(H, W), float(min(cfg.size, H, W)))
            rw = rh = torch.full((n,), side, device=dev)
        else:
            rw, rh = torch.full((n,), float(W), device=dev), torch.full((n,), float(H), device=dev)
        rx = torch.rand(n, device=dev) * (W - rw)
        ry = torch.rand(n, device=dev) * (H - rh)
        boxes = []
        for _ in range(2):
            w, h = fit_boxes(rw * rh, rw, rh, scale=cfg.scale, ratio=cfg.ratio)
            cx = rx + w / 2 + torch.rand(n, device=dev) * (rw - w)
            cy = ry + h / 2 + torch.rand(n, device=dev) * (rh - h)
            boxes.append(torch.stack([cx, cy, w, h], -1))
        return boxes[0], boxes[1]

    def frame_boxes(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame boxes ``(n, T, 4)`` and source frame indices ``(n, T)`` of ``n`` random clips."""
        cfg, dev = self.cfg, self.device
        first, last = self._box_pair(n)
        start = torch.randint(0, cfg.pan_frames - cfg.span + 1, (n,), device=dev)
        pos = start[:, None] + torch.arange(cfg.frames, device=dev)[None] * cfg.stride  # (n, T) index in the pan
        alpha = (pos.float() / max(cfg.pan_frames - 1, 1))[..., None]  # (n, T, 1)
        boxes = (1 - alpha) * first[:, None] + alpha * last[:, None]  # linear camera motion, (n, T, 4)
        count = self.count
        if count == 1:
            index = torch.zeros_like(pos)
        else:  # a video: the clip also moves through its frames, from a random start
            offset = torch.randint(0, max(count - cfg.pan_frames, 0) + 1, (n,), device=dev)
            index = (offset[:, None] + pos).clamp_(max=count - 1)
        return boxes, index

    @torch.no_grad()
    def sample(self, batch_size: int) -> torch.Tensor:
        """``(B, 3, frames, size, size)`` clips in [0, 1] on the sampler's device."""
        cfg, n, s, t = self.cfg, batch_size, self.cfg.size, self.cfg.frames
        H, W = self.height, self.width
        boxes, index = self.frame_boxes(n)
        dev = self.device
        sign = torch.ones(n, t, 1, device=dev)  # +1, or -1 for a horizontally flipped clip
        if self.crop is not None:  # the same square sub-box of every frame's box, per clip
            f = torch.empty(n, 1, device=dev).uniform_(*self.crop).sqrt_()  # side, as a fraction of the clip's
            off = torch.rand(n, 2, device=dev) * (1 - f) + f / 2 - 0.5  # its centre, from the clip's centre
            boxes = torch.cat([boxes[..., :2] + off[:, None] * boxes[..., 2:], boxes[..., 2:] * f[:, None]], -1)
        if self.crop_hflip > 0:
            flip = torch.rand(n, device=dev) < self.crop_hflip
            sign = torch.where(flip[:, None, None], -sign, sign)
        boxes, index, sign = boxes.reshape(n * t, 4), index.reshape(n * t), sign.reshape(n * t, 1)
        # source pixels per output pixel decides the pyramid level, and its place in the atlas
        cx, cy, w, h = boxes.unbind(-1)
        level = torch.clamp(torch.floor(torch.log2((torch.maximum(w, h) / s).clamp(min=1.0))), 0,
                            self.num_levels - 1).long()
        count = self.count
        z = (2 * index.to(boxes.dtype) + 1) / count - 1  # depth: the centre of each frame's source frame
        sx, sy, tx, ty = self.atlas_maps[level].to(boxes.dtype).unbind(-1)
        sg = sign[:, 0]
        lin = (torch.arange(s, device=self.device, dtype=torch.float32) + 0.5) / s * 2 - 1  # pixel centres
        gx = ((cx[:, None] + lin[None] * (sg * w)[:, None] / 2) / W * 2 - 1) * sx[:, None] + tx[:, None]  # (B*T, S)
        gy = ((cy[:, None] + lin[None] * h[:, None] / 2) / H * 2 - 1) * sy[:, None] + ty[:, None]
        grid = torch.stack([gx[:, None, :].expand(-1, s, -1), gy[:, :, None].expand(-1, -1, s)], -1)
        if count == 1:  # one image: every frame of every clip samples the same atlas
            out = F.grid_sample(self.atlas.expand(n * t, -1, -1, -1), grid, mode="bilinear",
                                padding_mode="border", align_corners=False)
        else:  # a video: a depth coordinate at a frame's centre samples exactly that frame
            grid = torch.cat([grid, z[:, None, None, None].expand(-1, s, s, 1)], -1)[None]  # (1, B*T, S, S, 3)
            out = F.grid_sample(self.atlas, grid, mode="bilinear", padding_mode="border",
                                align_corners=False)[0].transpose(0, 1)  # (B*T, C, S, S)
        clips = out.reshape(n, t, -1, s, s).transpose(1, 2)  # (B, C, T, S, S)
        clips = self.jitter(clips)
        for p, dim in ((cfg.hflip, -1), (cfg.vflip, -2)):
            if p > 0:
                flip = torch.rand(n, device=self.device) < p
                clips = torch.where(flip[:, None, None, None, None], clips.flip(dim), clips)
        return clips.clamp_(0, 1).contiguous()
