"""Raw inputs for prediction: an audio file or a waveform, cut into the windows the models take."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from aip.errors import UsageError


def read_waveform(item: Any, *, rate: int, samples: int) -> torch.Tensor:
    """An audio file (any rate, mixed to mono, resampled to ``rate``) or a mono waveform already at ``rate``,
    as ``(1, samples)``: a shorter recording is zero-padded around its centre, as test clips are. A longer one
    is cut into consecutive windows ``(V, 1, samples)`` (the last one zero-padded) whose predictions are
    averaged."""
    from modalities.audio.datasets import fit_length
    from modalities.audio.decode import read_audio

    if isinstance(item, (str, Path)):
        wave = read_audio(Path(item), rate=rate)
    else:
        wave = item if isinstance(item, torch.Tensor) else torch.from_numpy(np.asarray(item))
        wave = wave.float().squeeze()
        if wave.dim() != 1:
            raise UsageError(f"a waveform must be mono, (samples,) or (1, samples); got {tuple(item.shape)}")
    if wave.numel() <= samples:
        return fit_length(wave, samples, random=False)[None]
    windows = -(-wave.numel() // samples)
    wave = torch.nn.functional.pad(wave, (0, windows * samples - wave.numel()))
    return wave.view(windows, 1, samples)


def input_spec(recipe: Any) -> dict[str, Any]:
    cfg = recipe.source
    return {
        "shape": [1, cfg.samples], "dtype": "float32", "range": [-1.0, 1.0], "layout": "NCL",
        "sample_rate": cfg.rate, "seconds": cfg.window,
        "preprocess": (f"mono waveform at {cfg.rate} Hz, {cfg.samples} samples ({cfg.window:g} s; shorter clips "
                       "zero-padded around the centre); the model computes its log-mel front end inside"),
    }
