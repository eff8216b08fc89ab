"""Feature visualisation of images (and, through :func:`fourier_input`, of clips), as Lucid does it.

The input is parametrised by its Fourier coefficients scaled by 1/frequency (a "decorrelated" space in which
Adam's steps are about equally large for every frequency, unlike in pixel space where high frequencies win)
and its colours by the square root of the colour correlation of natural images, then squashed into [0, 1] by
a sigmoid. Every optimisation step sees a random rotation, scale and translation of it.
:class:`FourierVisuals` is that parametrisation for any grid (the video and audio modalities' visuals extend
it); :class:`ImageVisuals` is the image modality's :class:`aip.modality.Visuals`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from aip.plot import save_figure

#: square root of the colour correlation of ImageNet images (Lucid's ``color_correlation_svd_sqrt``)
COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR_SQRT = COLOR_SQRT / COLOR_SQRT.norm(dim=0).max()


def _freqs(shape: tuple[int, ...]) -> torch.Tensor:
    """|frequency| of every coefficient of ``rfftn`` over a grid of ``shape``."""
    axes = [torch.fft.fftfreq(n) for n in shape[:-1]] + [torch.fft.rfftfreq(shape[-1])]
    grids = torch.meshgrid(*axes, indexing="ij")
    return torch.sqrt(sum(g**2 for g in grids))


def fourier_params(count: int, channels: int, shape: tuple[int, ...], *, generator: torch.Generator,
                   sd: float = 0.01) -> torch.Tensor:
    """Random small spectra ``(count, channels, *rfft_shape, 2)`` (real and imaginary parts)."""
    spec_shape = (*shape[:-1], shape[-1] // 2 + 1)
    return torch.randn(count, channels, *spec_shape, 2, generator=generator) * sd


def fourier_input(params: torch.Tensor, shape: tuple[int, ...], *, decay: float = 1.0) -> torch.Tensor:
    """The signal ``(count, channels, *shape)`` of the 1/frequency-scaled spectra ``params``."""
    freqs = _freqs(shape).to(params.device)
    scale = freqs.clamp_min(1.0 / max(shape)).pow(-decay) * math.sqrt(math.prod(shape))
    spectrum = torch.view_as_complex(params.contiguous()) * scale
    dims = tuple(range(-len(shape), 0))
    return torch.fft.irfftn(spectrum, s=shape, dim=dims) / 4


def to_valid(x: torch.Tensor) -> torch.Tensor:
    """Decorrelated colours (channel dim 1) -> RGB in [0, 1]; one channel is only squashed."""
    if x.shape[1] == 3:
        x = torch.einsum("ij,bj...->bi...", COLOR_SQRT.to(x.device), x)
    return torch.sigmoid(x)


def random_affine(x: torch.Tensor, *, generator: torch.Generator, degrees: float = 10.0,
                  scale: tuple[float, float] = (0.9, 1.1), shift: float = 0.08) -> torch.Tensor:
    """A random rotation, scale and translation (``shift`` x the side) per image of ``(N, C, H, W)``,
    differentiable, with reflected borders."""
    n = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    angle = torch.deg2rad(uniform(-degrees, degrees))
    s = uniform(*scale)
    tx, ty = uniform(-2 * shift, 2 * shift), uniform(-2 * shift, 2 * shift)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def render_grid(pictures: dict[str, torch.Tensor], labels: list[str], path: Path) -> Path:
    """One row per model (``{"student": (N, C, H, W), ...}``), one column per class, labelled, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = len(pictures), len(labels)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols + 0.6, 1.8 * rows), squeeze=False)
    for r, (role, x) in enumerate(pictures.items()):
        for c in range(cols):
            ax = axes[r, c]
            img = x[c].float().clamp(0, 1)
            if img.shape[0] == 1:
                ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(labels[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(role, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


class FourierVisuals:
    """Parameters and inputs of :class:`aip.modality.Visuals` for signals of ``channels`` over a grid ``shape``:
    spectra scaled by 1/frequency**``decay`` (:func:`fourier_params`, :func:`fourier_input`), mapped into the
    models' value range by :meth:`squash`. Subclasses set the three attributes and add ``transform`` and
    ``render``."""

    channels: int
    shape: tuple[int, ...]
    decay: float = 1.0

    def params(self, count: int, *, generator: torch.Generator) -> torch.Tensor:
        return fourier_params(count, self.channels, self.shape, generator=generator)

    def input(self, params: torch.Tensor) -> torch.Tensor:
        return self.squash(fourier_input(params, self.shape, decay=self.decay))

    def squash(self, x: torch.Tensor) -> torch.Tensor:
        """Decorrelated colours to RGB in [0, 1] (:func:`to_valid`)."""
        return to_valid(x)


class ImageVisuals(FourierVisuals):
    """Visuals of the recipe's ``(C, S, S)`` images: a random affine per image, a labelled PNG grid."""

    def __init__(self, recipe: Any) -> None:
        self.channels = recipe.source.channels
        self.shape = (recipe.source.size, recipe.source.size)

    def transform(self, x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        return random_affine(x, generator=generator)

    def render(self, inputs: dict[str, torch.Tensor], labels: list[str], path: Path) -> list[Path]:
        return [render_grid(inputs, labels, path)]
