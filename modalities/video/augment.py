"""Training-time augmentation of clips: AugMix, short-side scale and random crop, flip, then CutMix.

Every operation draws its random parameters per clip and applies them identically to all frames of the clip
(:class:`~modalities.video.augmix.AugMix`, then kornia's ``VideoSequential(same_on_frame=True)``), so
augmentation never adds motion the clip did not have. CutMix pastes one box of a partner clip, the same box on
every frame. Everything runs batched on the device.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

from aip.mixing import cutmix
from modalities.video.augmix import AugMix
from modalities.video.config import VideoAugmentConfig


def crop_scale(cfg: VideoAugmentConfig, size: int) -> tuple[float, float]:
    """The short-side scale and ``size`` crop as a square crop of the clip: the range of its area fraction."""
    lo, hi = (min(size / s, 1.0) ** 2 for s in (cfg.short_side[1], cfg.short_side[0]))
    return lo, hi


def _video(*ops: nn.Module) -> K.VideoSequential:
    return K.VideoSequential(*ops, data_format="BCTHW", same_on_frame=True)


class VideoAugmenter(nn.Module):
    """``clips (B, C, T, S, S) in [0, 1]`` -> augmented, CutMix'ed clips of the same shape.

    Args:
        cfg: the recipe's ``[augment]`` section.
        size: the clips' side (``source.size``); the short-side scale crops ``size`` out of a clip scaled to
            a short side in ``cfg.short_side``, i.e. a random square of ``size / short_side`` of the clip's side.
        geometry: do that crop and the horizontal flip here (kornia, after AugMix). The video modality passes
            ``False`` and folds them into the clip sampler's one resampling instead
            (:class:`~modalities.video.source.ClipSampler`'s ``crop``), before AugMix.

    AugMix and CutMix draw every random number on the device and read nothing back, so without the kornia
    geometry a CUDA graph can capture the augmenter (``capturable``).
    """

    def __init__(self, cfg: VideoAugmentConfig, *, size: int, geometry: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.augmix = AugMix(width=cfg.augmix_width, severity=cfg.augmix_severity) if cfg.augmix else None
        lo, hi = crop_scale(cfg, size)
        ops: list[nn.Module] = []
        if geometry and lo < 1.0:
            ops.append(K.RandomResizedCrop((size, size), scale=(lo, hi), ratio=(1.0, 1.0)))
        if geometry and cfg.hflip > 0:
            ops.append(K.RandomHorizontalFlip(p=cfg.hflip))
        self.geometry = _video(*ops) if ops else None
        # kornia draws its parameters on the host: only without its ops can a CUDA graph capture this
        self.capturable = self.geometry is None

    @torch.no_grad()
    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = clips
        if self.augmix is not None:
            x = self.augmix(x)
        if self.geometry is not None:
            x = self.geometry(x)
        # one box per clip, the same on all its frames: the box spans (H, W) of (B, C, T, H, W)
        return cutmix(x, alpha=self.cfg.cutmix, p=self.cfg.cutmix_p, dims=2).clamp_(0, 1)
