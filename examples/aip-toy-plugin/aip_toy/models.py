"""Classifiers of windows ``(B, C, W)`` -> logits ``(B, num_classes)``, by name from :data:`MODELS`.

Every model normalises its own input (the core hands models raw windows, as it hands image models raw
pixels in ``[0, 1]``): by default each window is standardised to zero mean and unit standard deviation, which
also makes the models blind to the augmenter's random gain; a recipe's ``mean``/``std`` (one value each)
replace that with a fixed normalisation.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch
from torch import nn

from aip.plugin import AipError, Registry

Builder = Callable[..., nn.Module]

#: ``builder(num_classes, channels, *, norm, **kwargs) -> nn.Module``; kwargs come from the recipe's
#: ``kwargs`` table. Here the builders are the model classes themselves; a function works as well.
MODELS: Registry[Builder] = Registry("toy model")


class Standardize(nn.Module):
    """Per-window standardisation, or a fixed ``(x - mean) / std`` when ``mean``/``std`` are given."""

    def __init__(self, mean: Sequence[float] = (), std: Sequence[float] = ()) -> None:
        super().__init__()
        self.fixed = bool(mean)
        self.register_buffer("mean", torch.tensor(list(mean) or [0.0]).view(1, -1, 1))
        self.register_buffer("std", torch.tensor(list(std) or [1.0]).view(1, -1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixed:
            return (x - self.mean) / self.std
        return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-5)


@MODELS.register("mlp")
class MLP(nn.Module):
    """Standardise, flatten ``C * window`` samples, ``depth`` hidden layers of ``hidden`` units, logits."""

    def __init__(self, num_classes: int, channels: int = 1, *, window: int = 128, hidden: int = 128,
                 depth: int = 2, norm: Standardize | None = None) -> None:
        super().__init__()
        self.window = window
        self.norm = norm or Standardize()
        layers: list[nn.Module] = [nn.Flatten()]
        width = channels * window
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.window:
            raise RuntimeError(f"mlp was built for windows of {self.window} samples, got {x.shape[-1]}")
        return self.net(self.norm(x))


@MODELS.register("cnn1d")
class CNN1d(nn.Module):
    """Standardise, three conv-BN-ReLU blocks (``width``, 2x, 4x channels; max-pool between), global
    average pool, linear. Takes windows of any length."""

    def __init__(self, num_classes: int, channels: int = 1, *, width: int = 16, kernel: int = 7,
                 norm: Standardize | None = None) -> None:
        super().__init__()
        self.norm = norm or Standardize()
        blocks: list[nn.Module] = []
        c_in = channels
        for i, c_out in enumerate((width, 2 * width, 4 * width)):
            if i:
                blocks.append(nn.MaxPool1d(2))
            blocks += [nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm1d(c_out),
                       nn.ReLU(inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.norm(x)).mean(-1))


def build(arch: str, *, num_classes: int, channels: int = 1, pretrained: bool = False,
          kwargs: dict | None = None, mean: Sequence[float] = (), std: Sequence[float] = ()) -> nn.Module:
    """The model named ``arch``, randomly initialised, taking raw windows ``(B, channels, W)``.

    Raises:
        AipError: for ``pretrained=True`` (there are no toy weights), an unknown name (listing the known
            ones) or a ``kwargs`` key the model does not take (listing those it takes).
    """
    if pretrained:
        raise AipError(f"the toy modality has no pretrained weights for {arch!r}; use teacher.kind = 'train' "
                       "(trained on the toy dataset and cached) or teacher.kind = 'checkpoint'")
    builder = MODELS.get(arch)  # unknown name -> AipError listing the known ones
    if len(mean) != len(std) or len(mean) not in (0, channels):
        raise AipError(f"toy model {arch!r}: mean and std need one value per channel ({channels}), "
                       f"got {list(mean)} and {list(std)}")
    kwargs = dict(kwargs or {})
    reserved = ("num_classes", "channels", "norm")
    allowed = [p for p in inspect.signature(builder).parameters if p not in reserved]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise AipError(f"toy model {arch!r} takes no kwargs {', '.join(map(repr, unknown))}; "
                       f"it takes: {', '.join(allowed)}")
    try:
        return builder(num_classes, channels, norm=Standardize(mean, std), **kwargs)
    except (TypeError, ValueError, RuntimeError) as e:  # e.g. width = "wide"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AipError(f"toy model {arch!r} could not be built with kwargs {kwargs} ({first})") from None


def names() -> list[str]:
    return MODELS.names()
