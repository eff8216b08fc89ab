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

from modalities.video.augmix import AugMix
from modalities.video.config import VideoAugmentConfig


def cutmix(x: torch.Tensor, *, alpha: float, p: float = 1.0) -> torch.Tensor:
    """Paste one box of a random partner clip into each clip, the same box on all frames.

    Args:
        x: ``(B, C, T, H, W)``.
        alpha: Beta parameter; the pasted box covers ``1 - lambda`` of the area, ``lambda ~ Beta(alpha, alpha)``.
        p: probability that a clip gets a box at all.
    """
    if alpha <= 0 or p <= 0:
        return x
    b, _, _, h, w = x.shape
    dev = x.device
    lam = torch.distributions.Beta(alpha, alpha).sample((b,)).to(dev)
    cut = torch.sqrt(1.0 - lam)
    bh, bw = (cut * h).round(), (cut * w).round()
    cy, cx = torch.rand(b, device=dev) * h, torch.rand(b, device=dev) * w
    y0, y1 = (cy - bh / 2).clamp(0, h), (cy + bh / 2).clamp(0, h)
    x0, x1 = (cx - bw / 2).clamp(0, w), (cx + bw / 2).clamp(0, w)
    ys = torch.arange(h, device=dev)[None, :, None] + 0.5  # (1, H, 1)
    xs = torch.arange(w, device=dev)[None, None, :] + 0.5  # (1, 1, W)
    box = (ys >= y0[:, None, None]) & (ys < y1[:, None, None]) & (xs >= x0[:, None, None]) & (xs < x1[:, None, None])
    box &= (torch.rand(b, device=dev) < p)[:, None, None]
    partner = torch.randperm(b, device=dev)
    return torch.where(box[:, None, None], x[partner], x)  # box (B, 1, 1, H, W): one box for all frames


def _video(*ops: nn.Module) -> K.VideoSequential:
    return K.VideoSequential(*ops, data_format="BCTHW", same_on_frame=True)


class VideoAugmenter(nn.Module):
    """``clips (B, C, T, S, S) in [0, 1]`` -> augmented, CutMix'ed clips of the same shape.

    Args:
        cfg: the recipe's ``[augment]`` section.
        size: the clips' side (``source.size``); the short-side scale crops ``size`` out of a clip scaled to
            a short side in ``cfg.short_side``, i.e. a random square of ``size / short_side`` of the clip's side.
    """

    def __init__(self, cfg: VideoAugmentConfig, *, size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.augmix = AugMix(width=cfg.augmix_width, severity=cfg.augmix_severity) if cfg.augmix else None
        lo, hi = (min(size / s, 1.0) ** 2 for s in (cfg.short_side[1], cfg.short_side[0]))
        ops: list[nn.Module] = []
        if lo < 1.0:
            ops.append(K.RandomResizedCrop((size, size), scale=(lo, hi), ratio=(1.0, 1.0)))
        if cfg.hflip > 0:
            ops.append(K.RandomHorizontalFlip(p=cfg.hflip))
        self.geometry = _video(*ops) if ops else None

    @torch.no_grad()
    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = clips
        if self.augmix is not None:
            x = self.augmix(x)
        if self.geometry is not None:
            x = self.geometry(x)
        return cutmix(x, alpha=self.cfg.cutmix, p=self.cfg.cutmix_p).clamp_(0, 1)
