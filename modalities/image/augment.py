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

from aip.mixing import cutmix
from modalities.image.color import ColorJitter
from modalities.image.config import ImageAugmentConfig


class Solarize(nn.Module):
    """PIL's solarize: invert the pixels above one half, on each sample with probability ``p`` (one pass over
    the batch; a sample not drawn keeps its pixels)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        on = torch.rand(x.shape[0], device=x.device) < self.p
        return torch.where(on.view(-1, *([1] * (x.dim() - 1))) & (x > 0.5), 1 - x, x)


class ImageAugmenter(nn.Module):
    """``views (B, C, S, S) in [0, 1]`` -> augmented, CutMix'ed views of the same shape.

    ``geometry = False`` leaves out the crop and horizontal flip: the image modality folds them into the view
    sampler's single resampling (:class:`~modalities.image.source.ImageViewSampler`'s ``crop``), which is
    faster and interpolates once instead of twice; views from other samplers (``dataset:train``) keep them here.
    """

    def __init__(self, cfg: ImageAugmentConfig, *, size: int, channels: int, geometry: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        # kornia's crop and flip draw their parameters on the host: only without them can a graph capture this
        self.capturable = not (geometry and (cfg.crop == "rrc" or (cfg.crop == "pad" and cfg.pad > 0)
                                             or cfg.hflip > 0))
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
            ops.append(Solarize(cfg.solarize_p))
        self.ops = nn.Sequential(*ops)

    @torch.no_grad()
    def forward(self, views: torch.Tensor) -> torch.Tensor:
        x = self.ops(views) if len(self.ops) else views.clone()  # never write into the caller's tensor
        return cutmix(x, alpha=self.cfg.cutmix, p=self.cfg.cutmix_p, dims=2).clamp_(0, 1)  # one box per view
