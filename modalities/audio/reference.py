"""The CPU audio pipeline an audio user would write, kept as a speed reference for ``aip bench --vs-reference``.

The paper released no audio code. The usual way to train on windows of a recording is a ``Dataset`` that reads
a random window from the file with soundfile, augments it with librosa and numpy in DataLoader worker
processes, and hands the model a log-mel spectrogram. This module is that pipeline, with the recipe's
``[augment]`` settings item by item: speed perturbation as ``librosa.effects.time_stretch`` followed by
``librosa.effects.pitch_shift`` by the same factor (tempo and pitch together, as aip's speed change), a time
shift, an isolated stretch, reverb (a synthetic room response, ``scipy.signal.fftconvolve``), gain, coloured
noise at a random SNR, time masks, then ``librosa.feature.melspectrogram`` with the student's front end (its
``n_mels``, ``win_ms``, ``hop_ms``, ``n_fft``, ``f_min``, ``f_max``) and SpecAugment frequency masks on the
log-mel rows. CutMix and MixUp mix windows of a batch, which a per-item pipeline does not see; they are left
out (in aip they cost a small part of the augmentation).

It does more per window than aip's data stage, which hands the models waveforms and leaves the log-mel to the
models' own front end on the training device; ``docs/benchmarks.md`` says what the ratio compares.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset

from aip.errors import AipError
from aip.files import atomic_path

#: the models' front-end defaults (modalities.audio.models.LogMel)
FRONT_END = {"n_mels": 64, "win_ms": 25.0, "hop_ms": 10.0, "n_fft": 0, "f_min": 60.0, "f_max": 7800.0}


def front_end(kwargs: dict[str, Any], rate: int) -> dict[str, Any]:
    """librosa ``melspectrogram`` arguments for a model's ``kwargs`` (the keys its log-mel front end takes)."""
    fe = {k: kwargs.get(k, v) for k, v in FRONT_END.items()}
    win, hop = round(rate * fe["win_ms"] / 1000), round(rate * fe["hop_ms"] / 1000)
    return {"sr": rate, "n_fft": int(fe["n_fft"]) or 1 << (win - 1).bit_length(), "win_length": win,
            "hop_length": hop, "n_mels": int(fe["n_mels"]), "fmin": float(fe["f_min"]), "fmax": float(fe["f_max"])}


class LibrosaWindows(Dataset):
    """``count`` random windows of the recording at ``path``, each read from the file and augmented with librosa;
    items are ``(log-mel (1, n_mels, frames), 0)``."""

    def __init__(self, path: Path, *, frames: int, recipe: Any, count: int) -> None:
        self.path, self.frames, self.count = path, frames, count
        self.rate, self.samples, self.aug = recipe.source.rate, recipe.source.samples, recipe.augment
        self.mel = front_end(dict(recipe.student.kwargs), self.rate)

    def __len__(self) -> int:
        return self.count

    def _coloured_noise(self, rng: np.random.Generator, n: int) -> np.ndarray:
        spectrum = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / self.rate).clip(20, None)
        noise = np.fft.irfft(spectrum * f ** (-rng.uniform(0, 2) / 2), n)
        return noise / (noise.std() + 1e-9)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        import librosa
        import scipy.signal

        aug, rate, L = self.aug, self.rate, self.samples
        rng = np.random.default_rng(int(torch.randint(1 << 62, ())))  # each worker has its own torch seed
        speed = rng.uniform(*aug.speed)
        shift = round(aug.shift * rate)
        need = min(math.ceil(L * speed) + 2 * shift, self.frames)
        start = int(rng.integers(0, self.frames - need + 1))
        x, _ = sf.read(str(self.path), start=start, frames=need, dtype="float32")
        if speed != 1.0:
            x = librosa.effects.time_stretch(x, rate=speed)  # tempo ...
            x = librosa.effects.pitch_shift(x, sr=rate, n_steps=12 * math.log2(speed))  # ... and pitch
        offset = int(rng.integers(0, max(len(x) - L, 0) + 1))
        x = librosa.util.fix_length(x[offset: offset + L], size=L)
        if rng.random() < aug.isolate_p:  # keep one stretch, silence the rest
            keep = min(round(rng.uniform(*aug.isolate) * rate), L)
            at = int(rng.integers(0, L - keep + 1))
            x = np.concatenate([np.zeros(at, x.dtype), x[at: at + keep], np.zeros(L - at - keep, x.dtype)])
        if rng.random() < aug.reverb_p:  # exponentially decaying noise, 60 dB down after rt60 seconds
            rt60 = rng.uniform(*aug.rt60)
            t = np.arange(round(rt60 * rate)) / rate
            ir = rng.standard_normal(t.size) * np.exp(-3 * math.log(10) * t / rt60)
            ir[0] = 1.0
            wet = scipy.signal.fftconvolve(x, ir)[:L]
            x = wet * (np.sqrt(np.mean(x**2)) / (np.sqrt(np.mean(wet**2)) + 1e-9))
        x = x * 10 ** (rng.uniform(*aug.gain_db) / 20)
        if rng.random() < aug.noise_p:
            snr = rng.uniform(*aug.snr_db)
            x = x + self._coloured_noise(rng, L) * np.sqrt(np.mean(x**2) + 1e-12) / 10 ** (snr / 20)
        for _ in range(aug.time_masks):
            width = int(rng.integers(0, round(aug.time_mask * rate) + 1))
            at = int(rng.integers(0, L - width + 1))
            x[at: at + width] = 0
        mel = librosa.feature.melspectrogram(y=np.asarray(x, np.float32), power=2.0, **self.mel)
        logmel = np.log(mel + 1e-6)
        n_mels = logmel.shape[0]
        for _ in range(aug.freq_masks):
            width = int(rng.integers(0, round(aug.freq_mask * n_mels) + 1))
            at = int(rng.integers(0, n_mels - width + 1))
            logmel[at: at + width] = logmel.min()
        return torch.from_numpy(logmel).float().unsqueeze(0), 0


def reference_loader(recipe: Any, wave: torch.Tensor, *, root: Path, batch_size: int, workers: int,
                     count: int) -> DataLoader:
    """The librosa pipeline over ``wave`` (the recipe's recording, written to ``root`` as a WAV file first)."""
    try:  # loaded here (about 10 s of imports), so the forked workers start with them
        import librosa.effects  # noqa: F401
        import librosa.feature  # noqa: F401
        import scipy.signal  # noqa: F401
    except ImportError:
        raise AipError("the audio reference pipeline needs librosa; pip install librosa") from None
    if wave.numel() < recipe.source.samples:
        raise AipError(f"the reference pipeline needs a recording of at least {recipe.source.samples} samples")
    path = root / "source.wav"
    with atomic_path(path) as tmp:
        sf.write(str(tmp), wave.detach().float().cpu().numpy(), recipe.source.rate, format="WAV", subtype="FLOAT")
    data = LibrosaWindows(path, frames=wave.numel(), recipe=recipe, count=max(count, batch_size))
    return DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers,
                      persistent_workers=workers > 0)
