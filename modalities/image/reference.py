"""The paper's input pipeline, kept as a speed reference for ``aip bench --vs-reference``.

The paper's code writes the views of the single image to disk once (about 100 GB of patches for ImageNet) and
trains from that folder with per-image PIL augmentation in DataLoader worker processes. This module does the
same on a small scale: it saves ``count`` views from the recipe's sampler as JPEG patches, then serves them
through torchvision's PIL transforms (random-resized or padded random crop, flip, colour jitter, grayscale).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T


class PatchFolder(Dataset):
    """Pre-generated patches on disk, each augmented per item with PIL."""

    def __init__(self, files: list[Path], transform: Any, mode: str) -> None:
        self.files, self.transform, self.mode = files, transform, mode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.files[i]) as img:
            return self.transform(img.convert(self.mode)), 0


def write_patches(views: torch.Tensor, root: Path) -> list[Path]:
    """Save ``(N, C, H, W)`` views in [0, 1] as JPEG files (quality 95) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    files = []
    arr = (views.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    for i, a in enumerate(arr):
        path = root / f"{i:06d}.jpg"
        Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(path, quality=95)
        files.append(path)
    return files


def reference_loader(recipe: Any, sampler: Any, *, root: Path, batch_size: int, workers: int,
                     count: int) -> DataLoader:
    """The paper-style pipeline for the recipe's view size and crop kind."""
    size, channels, aug = recipe.source.size, recipe.source.channels, recipe.augment
    count = max(count, batch_size)  # at least one full batch
    if aug.crop == "rrc":  # ImageNet-style: patches stored larger, random-resized crop to the training size
        big = round(size / 0.875)
        views = torch.nn.functional.interpolate(sampler.sample(count).float().cpu(), size=(big, big),
                                                mode="bilinear", antialias=True, align_corners=False)
        crop = T.RandomResizedCrop(size, scale=(0.08, 1.0), antialias=True)
    else:  # CIFAR-style: patches at the training size, padded random crop
        views = sampler.sample(count).float().cpu()
        crop = T.RandomCrop(size, padding=max(aug.pad, 0))
    files = write_patches(views, root)
    transform = T.Compose([
        crop, T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4 if channels == 3 else 0.0, 0.1 if channels == 3 else 0.0)],
                      p=0.8),
        *([T.RandomGrayscale(0.2)] if channels == 3 else []),
        T.ToTensor(),
    ])
    return DataLoader(PatchFolder(files, transform, "RGB" if channels == 3 else "L"), batch_size=batch_size,
                      shuffle=True, drop_last=True, num_workers=workers, persistent_workers=workers > 0)
