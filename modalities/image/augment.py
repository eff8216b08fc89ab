"""Training-time augmentation of image views: kornia per-sample augmentation, then CutMix on every batch.

The paper's ImageNet pipeline (random-resized crop, colour jitter p=0.8, grayscale p=0.2, solarize p=0.2,
horizontal flip) or its CIFAR pipeline (pad-4 random crop, flip), followed by CutMix. Everything runs batched
on the training device with independent random parameters per sample; teacher and student are then fed the
very same tensor.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

from aip import graphs
from modalities.image.color import ColorJitter
from modalities.image.config import ImageAugmentConfig


def cutmix(x: torch.Tensor, *, alpha: float, p: float = 1.0) -> torch.Tensor:
    """Paste a random box of a random partner into each sample (per-sample box and lambda ~ Beta(alpha, alpha)).

    Args:
        x: ``(B, C, H, W)``, or ``(B, C, T, H, W)`` clips, which get one box on all their frames.
        alpha: Beta parameter; the pasted box covers ``1 - lambda`` of the area.
        p: probability that a sample gets a box at all.

    Every random number is drawn on ``x``'s device, so a CUDA graph can capture it (:mod:`aip.graphs`).
    """
    if alpha <= 0 or p <= 0:
        return x
    b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    dev = x.device
    lam = graphs.beta(alpha, b, dev)
    cut = torch.sqrt(1.0 - lam)
    bh, bw = (cut * h).round(), (cut * w).round()
    cy, cx = torch.rand(b, device=dev) * h, torch.rand(b, device=dev) * w
    y0, y1 = (cy - bh / 2).clamp(0, h), (cy + bh / 2).clamp(0, h)
    x0, x1 = (cx - bw / 2).clamp(0, w), (cx + bw / 2).clamp(0, w)
    ys = torch.arange(h, device=dev)[None, :, None] + 0.5  # (1, H, 1)
    xs = torch.arange(w, device=dev)[None, None, :] + 0.5  # (1, 1, W)
    box = (ys >= y0[:, None, None]) & (ys < y1[:, None, None]) & (xs >= x0[:, None, None]) & (xs < x1[:, None, None])
    box &= (torch.rand(b, device=dev) < p)[:, None, None]
    partner = graphs.permutation(b, dev)
    box = box.view(b, *([1] * (x.dim() - 3)), h, w)  # (B, 1, [1,] H, W): the same box on every channel/frame
    return torch.where(box, x[partner], x)


class Solarize(nn.Module):
    """PIL's solarize (invert pixels above one half) on a random subset of the batch, each sample with prob. p."""

    def __init__(self, p: float, *, whole: bool | None = None) -> None:
        super().__init__()
        self.p = p
        self.whole = whole  # one masked pass over the batch (None: on CUDA) instead of the picked subset

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        on = torch.rand(x.shape[0], device=x.device) < self.p
        if self.whole or (self.whole is None and x.device.type == "cuda"):  # picking would read the mask back
            return torch.where(on.view(-1, *([1] * (x.dim() - 1))) & (x > 0.5), 1 - x, x)
        idx = on.nonzero()[:, 0]
        if len(idx):
            sub = x[idx]
            x = x.clone()  # out of place, like every other op
            x[idx] = torch.where(sub > 0.5, 1 - sub, sub)
        return x


class ImageAugmenter(nn.Module):
    """``views (B, C, S, S) in [0, 1]`` -> augmented, CutMix'ed views of the same shape.

    ``geometry = False`` leaves out the crop and horizontal flip: the image modality folds them into the view
    sampler's single resampling (:class:`~modalities.image.source.ImageViewSampler`'s ``crop``), which is
    faster and interpolates once instead of twice; views from other samplers (``dataset:train``) keep them here.
    """

    def __init__(self, cfg: ImageAugmentConfig, *, size: int, channels: int, geometry: bool = True,
                 capture: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        # kornia's crop and flip draw on the host and read the device: only without them can a graph capture this
        self.capture = capture and not (geometry and (cfg.crop == "rrc" or (cfg.crop == "pad" and cfg.pad > 0)
                                                      or cfg.hflip > 0))
        self.capturable = self.capture
        ops: list[nn.Module] = []
        if geometry and cfg.crop == "rrc":
            ops.append(K.RandomResizedCrop((size, size), scale=cfg.crop_scale))
        elif geometry and cfg.crop == "pad" and cfg.pad > 0:
            ops.append(K.RandomCrop((size, size), padding=cfg.pad))
        if geometry and cfg.hflip > 0:
            ops.append(K.RandomHorizontalFlip(p=cfg.hflip))
        jitter_p = cfg.jitter_p if any(cfg.jitter) else 0.0
        grayscale_p = cfg.grayscale_p if channels == 3 else 0.0
        if jitter_p > 0 or grayscale_p > 0:  # colour jitter then grayscale: one colour matrix per sample
            ops.append(ColorJitter(*cfg.jitter, p=jitter_p, grayscale_p=grayscale_p))
        if cfg.solarize_p > 0:
            ops.append(Solarize(cfg.solarize_p, whole=True if self.capture else None))
        self.ops = nn.Sequential(*ops)

    @torch.no_grad()
    def forward(self, views: torch.Tensor) -> torch.Tensor:
        x = self.ops(views) if len(self.ops) else views.clone()  # never write into the caller's tensor
        return cutmix(x, alpha=self.cfg.cutmix, p=self.cfg.cutmix_p).clamp_(0, 1)
