"""Small from-scratch classifiers for 28-32 px images: a plain CNN, the CIFAR ResNets of He et al. (2016) and
the Wide ResNets of Zagoruyko & Komodakis (2016). Every net takes ``in_channels`` (1 for grayscale), ends in
global average pooling (so 28 px and 32 px inputs both work) and returns logits ``(B, num_classes)``. Bad
hyper-parameters raise ``ValueError``; :mod:`modalities.image.models` turns them into recipe errors.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Norm = Literal["batch", "group", "none"]
Shortcut = Literal["A", "B"]


def _norm(kind: str, channels: int) -> nn.Module:
    """Batch norm, group norm (the largest divisor of ``channels`` up to 8 as group count) or nothing."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = max(g for g in range(1, min(8, channels) + 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'batch', 'group' or 'none', got {kind!r}")


def _init(model: nn.Module) -> None:
    """He initialisation for convolutions, unit scale for norms, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


def _check_positive(**values: float) -> None:
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"{key} must be positive, got {value!r}")


class SimpleCNN(nn.Module):
    """Three stages of ``depth`` x [conv3x3 -> norm -> ReLU] with widths w, 2w, 4w; 2x2 max-pool after the
    first two stages; global average pool, dropout, linear."""

    def __init__(self, num_classes: int, in_channels: int = 3, *, width: int = 32, norm: Norm = "batch",
                 depth: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        _check_positive(width=width, depth=depth)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        layers: list[nn.Module] = []
        channels = in_channels
        for stage, out in enumerate((width, 2 * width, 4 * width)):
            for _ in range(depth):
                layers += [nn.Conv2d(channels, out, 3, padding=1, bias=norm == "none"), _norm(norm, out),
                           nn.ReLU(inplace=True)]
                channels = out
            if stage < 2:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)  # (B, 4w)
        return self.fc(self.dropout(x))


class BasicBlock(nn.Module):
    """Post-activation residual block: conv3x3-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU.

    Option ``A`` shortcuts subsample and zero-pad the channels (parameter-free, as in the CIFAR experiments
    of He et al.); option ``B`` uses a strided 1x1 convolution + BN.
    """

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: Shortcut) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride = stride
        self.pad = planes - in_planes
        self.project: nn.Module | None = None
        if shortcut == "B" and (stride != 1 or in_planes != planes):
            self.project = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                         nn.BatchNorm2d(planes))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.project is not None:
            return self.project(x)
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))  # zero channels both sides
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR: conv3x3(16) and three stages of n basic blocks with 16, 32, 64 channels
    (times ``width``), strides 1, 2, 2, then global average pool and linear."""

    def __init__(self, depth: int, num_classes: int, in_channels: int = 3, *, width: int = 1,
                 shortcut: Shortcut = "A") -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 (20, 32, 44, 56, 110, ...), got {depth}")
        _check_positive(width=width)
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' (zero-padding) or 'B' (1x1 conv), got {shortcut!r}")
        n = (depth - 2) // 6
        widths = [16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        blocks: list[nn.Module] = []
        planes = widths[0]
        for stage, out in enumerate(widths):
            for i in range(n):
                blocks.append(BasicBlock(planes, out, 2 if stage > 0 and i == 0 else 1, shortcut))
                planes = out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(planes, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.blocks(x)  # (B, 64w, H/4, W/4)
        return self.fc(x.mean(dim=(2, 3)))


class WideBlock(nn.Module):
    """Pre-activation wide block: BN-ReLU-conv3x3-BN-ReLU-dropout-conv3x3, plus an identity shortcut or a
    1x1 convolution of the pre-activated input when the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.project: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.project = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu(self.bn1(x))
        out = self.conv1(act)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        return out + (x if self.project is None else self.project(act))


class WideResNet(nn.Module):
    """WRN-D-K: conv3x3(16) and three groups of n = (D-4)/6 wide blocks with 16K, 32K, 64K channels, strides
    1, 2, 2, then BN-ReLU, global average pool and linear."""

    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int = 3, *,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be 6n+4 (10, 16, 22, 28, 40, ...), got {depth}")
        _check_positive(widen=widen)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        n = (depth - 4) // 6
        widths = [16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        planes = 16
        for stage, out in enumerate(widths):
            for i in range(n):
                blocks.append(WideBlock(planes, out, 2 if stage > 0 and i == 0 else 1, dropout))
                planes = out
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(planes)
        self.fc = nn.Linear(planes, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.conv1(x))  # (B, 64K, H/4, W/4)
        x = F.relu(self.bn(x))
        return self.fc(x.mean(dim=(2, 3)))
