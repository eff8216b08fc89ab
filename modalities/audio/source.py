"""The one long source recording and the sampler that cuts batches of random windows from it on the device.

The recording is decoded and resampled once, kept on the training device as one mono waveform, and every
batch is one gather: window ``b`` is ``wave[start_b : start_b + L]`` with random starts. Randomness comes from
torch's global RNG only, so a resumed run continues the same stream. The window sampler draws on the device
and never reads it back, so it can be captured into a CUDA graph (``capturable``, :mod:`aip.graphs`).
"""

from __future__ import annotations

import math

import torch

from aip.cache import download
from aip.errors import AipError, UsageError
from modalities.audio.config import AudioSourceConfig
from modalities.audio.decode import read_audio

SOURCES = ("PATH (WAV/FLAC/OGG/MP3/M4A...)", "http(s)://URL (cached)", "espeak:prose", "espeak:radio",
           "synthetic:noise", "dataset:train")


def coloured_noise(seconds: float, *, rate: int, seed: int) -> torch.Tensor:
    """Noise whose colour (spectral slope 1/f^beta, beta in [0, 2]: white to brown) and level change every
    second, so windows of it differ from each other."""
    g = torch.Generator().manual_seed(seed)
    n_seg = max(1, round(seconds))
    seg = round(seconds * rate) // n_seg
    white = torch.randn(n_seg, seg, generator=g)
    spec = torch.fft.rfft(white)
    f = torch.fft.rfftfreq(seg, 1 / rate).clamp(min=20.0)
    beta = torch.rand(n_seg, 1, generator=g) * 2
    coloured = torch.fft.irfft(spec * f ** (-beta / 2), n=seg)
    coloured = coloured / coloured.std(dim=1, keepdim=True)
    level = 10 ** (torch.empty(n_seg, 1).uniform_(-2, -0.5, generator=g))  # -40 .. -10 dB
    return (coloured * level).flatten()


def load_recording(cfg: AudioSourceConfig) -> torch.Tensor:
    """The source as a mono waveform ``(samples,)`` at ``cfg.rate``, checked to be long and loud enough."""
    uri = cfg.uri
    if uri.startswith("synthetic:"):
        if uri != "synthetic:noise":
            raise UsageError(f"unknown synthetic source {uri!r}; known: synthetic:noise")
        wave = coloured_noise(cfg.synthetic_seconds, rate=cfg.rate, seed=cfg.seed)
    elif uri.startswith("espeak:"):
        if uri not in ("espeak:prose", "espeak:radio"):
            raise UsageError(f"unknown espeak source {uri!r}; known: espeak:prose, espeak:radio")
        from modalities.audio.espeak import prose_recording
        from modalities.audio.sounds import radio_recording

        made = prose_recording() if uri == "espeak:prose" else radio_recording()
        wave = read_audio(made, rate=cfg.rate, what="source recording")
    elif uri.startswith(("http://", "https://")):
        wave = read_audio(download(uri), rate=cfg.rate, what="source recording")
    else:
        wave = read_audio(uri, rate=cfg.rate, what="source recording")
    if cfg.max_seconds:
        wave = wave[: round(cfg.max_seconds * cfg.rate)]
    if wave.numel() < cfg.samples:
        raise AipError(f"source recording {uri} lasts {wave.numel() / cfg.rate:.2f} s, shorter than one window "
                       f"(source.window = {cfg.window} s); use a longer recording")
    if float((wave - wave.mean()).abs().max()) < 1e-4:
        raise AipError(f"source recording {uri} is silent (no sound above -80 dBFS, any constant offset aside); "
                       "use a recording with sound in it")
    if cfg.loudness and not uri.startswith("synthetic:"):
        wave = wave * loudness_gain(wave, rate=cfg.rate, target=cfg.loudness)
    return wave.contiguous()


def loudness_gain(wave: torch.Tensor, *, rate: int, target: float) -> float:
    """The gain that brings ``wave`` to ``target`` LUFS of integrated loudness (ITU-R BS.1770:
    ``torchaudio.functional.loudness``, K-weighted and gated, so pauses do not count).

    It is measured on the recording scaled to a peak of 0.25, then shifted back by that scale (loudness
    scales with the gain exactly): torchaudio's K-weighting filters clamp their output to [-1, 1], and their
    treble shelf lifts high tones by 4 dB, so a full-scale recording was under-measured (a 3 kHz square wave by
    3.9 dB) and a floating-point one past full scale far more; a faint recording, measured as it is, would fall
    under the standard's absolute -70 LUFS gate. Where the standard gives no loudness (a recording shorter than its
    400 ms block, or every block still under the gate), the RMS level stands in."""
    import torchaudio.functional as AF

    peak = float(wave.abs().max())
    level = math.nan
    if wave.numel() >= 0.4 * rate:
        level = float(AF.loudness((wave * (0.25 / peak))[None], rate)) + 20 * math.log10(peak / 0.25)
    if not math.isfinite(level):
        level = 20 * math.log10(max(float(wave.pow(2).mean().sqrt()), 1e-10))
    return 10 ** ((target - level) / 20)


class WindowSampler:
    """Random windows of one recording: ``sample(B) -> (B, 1, L)`` float waveforms on ``device``.

    Every window of the recording is a row of one strided view of it (``unfold``, no copy), so a batch is one
    ``index_select`` of rows by random starts drawn on the device: no index per sample, no host read
    (``capturable``)."""

    capturable = True

    def __init__(self, wave: torch.Tensor, *, samples: int, device: torch.device) -> None:
        if wave.dim() != 1 or wave.numel() < samples:
            raise AipError(f"the source needs at least {samples} samples, got {tuple(wave.shape)}")
        self.wave = wave.to(device)
        self.windows = self.wave.unfold(0, samples, 1)  # (span, L) view: row s is wave[s : s + L]
        self.samples = samples
        self.device = device

    @torch.no_grad()
    def sample(self, batch_size: int) -> torch.Tensor:
        starts = torch.randint(self.windows.shape[0], (batch_size,), device=self.device)  # (B,)
        return self.windows.index_select(0, starts).unsqueeze(1)  # one gather -> (B, 1, L)
