"""``aip preview`` for audio: a PNG grid of the windows' log-mel spectrograms and a few of them as WAV files."""

from __future__ import annotations

from pathlib import Path

import torch

from modalities.audio.decode import write_wav

WAVS = 4


@torch.no_grad()
def render(views: torch.Tensor, path: Path, *, rate: int) -> list[Path]:
    """Write ``path`` (a grid of log-mels, low frequencies at the bottom, each scaled to its own range) and
    ``path``'s stem + ``-N.wav`` for the first :data:`WAVS` windows; return the files written.

    Args:
        views: ``(B, 1, samples)`` waveforms.
    """
    from torchvision.utils import save_image

    from modalities.audio.models import LogMel

    x = views.detach().float().cpu()
    mel = LogMel(rate=rate)(x).flip(-2)  # (B, 1, n_mels, frames)
    lo = mel.amin(dim=(1, 2, 3), keepdim=True)
    hi = mel.amax(dim=(1, 2, 3), keepdim=True)
    img = (mel - lo) / (hi - lo).clamp(min=1e-6)
    save_image(img, path, nrow=max(1, int(len(img) ** 0.5)), padding=2, pad_value=1.0)
    files = [path]
    for i in range(min(WAVS, len(x))):
        files.append(write_wav(path.with_name(f"{path.stem}-{i}.wav"), x[i], rate=rate))
    return files
