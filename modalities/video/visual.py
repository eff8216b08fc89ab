"""Feature visualisation of clips: the image modality's Fourier parametrisation over (time, height, width),
the same random rotation/scale/translation on every frame of a clip, and a GIF plus a PNG of middle frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from modalities.image.visual import FourierVisuals, random_affine, render_grid


class ClipVisuals(FourierVisuals):
    """:class:`aip.modality.Visuals` of the recipe's ``(3, T, S, S)`` clips in [0, 1]."""

    def __init__(self, recipe: Any) -> None:
        self.channels = 3
        self.shape = (recipe.source.frames, recipe.source.size, recipe.source.size)

    def transform(self, x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """One random affine per clip, applied to all its frames (the camera moves, the scene stays whole)."""
        state = generator.get_state()
        frames = []
        for i in range(x.shape[2]):  # the same draws for every frame: replay the generator's state
            generator.set_state(state)
            frames.append(random_affine(x[:, :, i], generator=generator))
        return torch.stack(frames, 2)

    def render(self, inputs: dict[str, torch.Tensor], labels: list[str], path: Path) -> list[Path]:
        """A labelled PNG of each clip's middle frame (one row per model) and a GIF of the clips playing."""
        from modalities.video.preview import clip_gif

        middle = {role: x[:, :, x.shape[2] // 2] for role, x in inputs.items()}
        png = render_grid(middle, labels, path)
        gif = clip_gif(torch.cat(list(inputs.values())), path.with_suffix(".gif"), fps=4.0, columns=len(labels))
        return [png, gif]
