"""Measures of the source recording that may predict how well it distils (``aip source-stats``): the audio
analogue of the image's compressed size and entropy, measured the same way for every recording.

The recording (mono, at the recipe's ``source.rate``) is cut or looped to ``SECONDS`` seconds and peak
normalised, then

- ``flac_bytes_per_second``: its size losslessly compressed (FLAC, 16-bit) per second,
- ``spectral_entropy_bits``: the mean over 32 ms frames of the Shannon entropy of the frame's normalised
  power spectrum (white noise is near the maximum, log2 of the bins; a pure tone near 0).
"""

from __future__ import annotations

import io

import torch

from aip.errors import UsageError
from modalities.audio.config import AudioSourceConfig
from modalities.audio.source import load_recording

SECONDS = 30.0


def fixed_length(wave: torch.Tensor, samples: int) -> torch.Tensor:
    reps = -(-samples // wave.numel())
    wave = wave.repeat(reps)[:samples]
    return wave / wave.abs().max().clamp(min=1e-9)


def flac_bytes(wave: torch.Tensor, rate: int) -> int:
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, wave.numpy(), rate, format="FLAC", subtype="PCM_16")
    return len(buf.getvalue())


def spectral_entropy(wave: torch.Tensor, rate: int) -> float:
    n_fft = 1 << max(6, round(0.032 * rate).bit_length() - 1)
    spec = torch.stft(wave, n_fft, hop_length=n_fft // 2, window=torch.hann_window(n_fft), return_complex=True)
    power = spec.abs().pow(2).T  # (frames, bins)
    loud = power.sum(1) > 1e-10 * power.sum(1).max()  # silent frames have no spectrum to speak of
    p = power[loud] / power[loud].sum(1, keepdim=True)
    h = -(p * torch.log2(p.clamp(min=1e-30))).sum(1)
    return float(h.mean())


def measures(cfg: AudioSourceConfig) -> dict[str, float]:
    if cfg.uri == "dataset:train":
        raise UsageError("source.uri = 'dataset:train' is many clips, not one; source measures need one recording")
    wave = fixed_length(load_recording(cfg).float(), round(SECONDS * cfg.rate))
    return {"flac_bytes_per_second": flac_bytes(wave, cfg.rate) / SECONDS,
            "spectral_entropy_bits": spectral_entropy(wave, cfg.rate), "seconds": SECONDS}
