"""Feature visualisation of audio: a waveform parametrised by its spectrum scaled by 1/sqrt(frequency) (pink,
so Adam's steps are not spent on hiss), squashed into [-1, 1]; every step sees a random circular time shift
and gain. Rendered as a grid of log-mel spectrograms and one WAV per model and class."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import torch

from aip import files
from aip.plot import save_figure
from modalities.image.visual import FourierVisuals


class WaveVisuals(FourierVisuals):
    """:class:`aip.modality.Visuals` of the recipe's ``(1, samples)`` waveforms in (-1, 1): a pink spectrum
    squashed by tanh; every step shifts each waveform circularly by up to ``shift`` x the window and scales it
    by a random gain in ``gain``."""

    channels = 1
    decay = 0.5
    shift = 0.1
    gain = (0.6, 1.0)

    def __init__(self, recipe: Any) -> None:
        self.shape = (recipe.source.samples,)
        self.rate = recipe.source.rate

    def squash(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)

    def transform(self, x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        n, _, samples = x.shape
        most = max(1, int(self.shift * samples))
        shifts = torch.randint(-most, most + 1, (n,), generator=generator).tolist()
        low, high = self.gain
        gains = low + (high - low) * torch.rand(n, 1, 1, generator=generator)
        return torch.stack([w.roll(s, -1) for w, s in zip(x, shifts)]) * gains.to(x)

    def render(self, inputs: dict[str, torch.Tensor], labels: list[str], path: Path) -> list[Path]:
        """A PNG grid of log-mel spectrograms (one row per model, one column per class) and a WAV per cell."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import soundfile as sf

        from modalities.audio.models import LogMel

        rate = self.rate
        mel = LogMel(rate=rate, n_mels=64 if rate >= 16_000 else 32, f_max=min(7800.0, rate / 2))
        written = []
        rows, cols = len(inputs), len(labels)
        fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols + 0.6, 2.0 * rows), squeeze=False)
        for r, (role, x) in enumerate(inputs.items()):
            with torch.no_grad():
                spec = mel(x.float())[:, 0]  # (N, mels, frames)
            for c, label in enumerate(labels):
                ax = axes[r, c]
                ax.imshow(spec[c].numpy(), origin="lower", aspect="auto", cmap="magma")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(label, fontsize=9)
                if c == 0:
                    ax.set_ylabel(role, fontsize=10)
                name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{role}-{label}")
                wav = io.BytesIO()
                sf.write(wav, x[c, 0].float().clamp(-1, 1).numpy(), rate, format="WAV", subtype="PCM_16")
                files.write_bytes(wav.getvalue(), path.parent / f"{name}.wav")
                written.append(path.parent / f"{name}.wav")
        fig.tight_layout()
        save_figure(fig, path)
        return [path, *written]
