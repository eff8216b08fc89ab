"""Training-time augmentation of waveform windows, batched on the device with per-sample random parameters.

Every operation works on the waveform, so teacher and student (which may have different front ends) hear
exactly the same augmented window. SpecAugment's masks are done in the waveform domain too: a time mask
zeroes a stretch of samples, a frequency mask notches a band (chosen on the mel scale) out of the window's
spectrum. Tensors are ``(B, 1, L)`` waveforms throughout.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from modalities.audio.config import AudioAugmentConfig


def _uniform(n: int, lo: float, hi: float, device: torch.device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(lo, hi)


def speed_and_shift(x: torch.Tensor, speed: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Play each window ``speed`` times faster (tempo and pitch together) about its centre, moved by ``shift``
    samples; positions read outside the window are silent.

    Args:
        x: ``(B, L)`` waveforms. speed: ``(B,)`` factors. shift: ``(B,)`` offsets in samples.
    """
    b, n = x.shape
    t = torch.arange(n, device=x.device, dtype=x.dtype)[None]  # (1, L)
    pos = (t - n / 2 - shift[:, None]) * speed[:, None] + n / 2  # (B, L) input position of each output sample
    # linear interpolation as a 1-pixel-high grid_sample (zero outside the window): one fused pass
    grid = torch.stack([(2 * pos + 1) / n - 1, torch.zeros_like(pos)], -1)[:, None]  # (B, 1, L, 2)
    y = F.grid_sample(x[:, None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return y[:, 0, 0]


def isolate(x: torch.Tensor, length: torch.Tensor, *, fade: int) -> torch.Tensor:
    """Keep one random stretch of ``length`` samples per window (with ``fade``-sample ramps) and silence the
    rest, so a stretch of continuous speech sounds like one word alone in a quiet clip."""
    b, n = x.shape
    start = torch.rand(b, device=x.device) * (n - length)
    t = torch.arange(n, device=x.device, dtype=x.dtype)[None]
    rise = ((t - start[:, None]) / fade).clamp(0, 1)
    fall = ((start + length)[:, None] - t).div(fade).clamp(0, 1)
    return x * rise * fall


def reverb(x: torch.Tensor, rt60: torch.Tensor, *, rate: int) -> torch.Tensor:
    """Convolve each window with a synthetic room response: a direct path plus exponentially decaying noise
    that falls by 60 dB in ``rt60`` seconds (FFT convolution), at the dry window's loudness."""
    b, n = x.shape
    k = min(n, int(float(rt60.max()) * rate))
    t = torch.arange(k, device=x.device, dtype=x.dtype)[None] / rate  # (1, K) seconds
    ir = torch.randn(b, k, device=x.device) * torch.exp(-6.908 * t / rt60[:, None]) * 0.3
    ir[:, 0] = 1.0
    size = 1 << (n + k - 1).bit_length()
    wet = torch.fft.irfft(torch.fft.rfft(x, size) * torch.fft.rfft(ir, size), size)[:, :n]
    scale = x.pow(2).mean(1, keepdim=True).sqrt() / wet.pow(2).mean(1, keepdim=True).sqrt().clamp(min=1e-8)
    return wet * scale


def _noise_spectrum(b: int, n: int, *, rate: int, device: torch.device) -> torch.Tensor:
    """``rfft`` of unit-RMS noise of random colour per window (spectral slope 1/f^beta, beta in [0, 2]).

    Drawn directly in the frequency domain: the rfft of white Gaussian noise has independent Gaussian real and
    imaginary parts (the DC and Nyquist bins are real), so no time-domain noise and no FFT are needed."""
    bins = n // 2 + 1
    parts = torch.randn(b, bins, 2, device=device)
    parts[:, 0, 1] = 0.0
    if n % 2 == 0:
        parts[:, -1, 1] = 0.0
    log_f = torch.fft.rfftfreq(n, 1 / rate, device=device).clamp(min=20.0).log()  # (F,)
    beta = torch.rand(b, 1, device=device) * 2
    parts = parts * torch.exp(log_f * (-beta / 2))[..., None]
    # Parseval: the time-domain power is the full spectrum's power over n^2 (rfft bins 1..n/2-1 count twice)
    power = parts.pow(2).sum(-1)  # (B, F)
    total = 2 * power.sum(1, keepdim=True) - power[:, :1] - (power[:, -1:] if n % 2 == 0 else 0)
    return torch.view_as_complex(parts / (total.sqrt() / n).clamp(min=1e-8)[..., None])


def coloured_noise_like(x: torch.Tensor, *, rate: int) -> torch.Tensor:
    """Unit-RMS noise of random colour per window (spectral slope 1/f^beta, beta in [0, 2])."""
    b, n = x.shape
    return torch.fft.irfft(_noise_spectrum(b, n, rate=rate, device=x.device), n)


def _mel(hz: torch.Tensor | float) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(hz) / 700.0)


def _band(b: int, n: int, width: torch.Tensor, *, rate: int, device: torch.device) -> torch.Tensor:
    """``(B, F)`` masks of one band per window: ``width`` (a fraction) of the mel range at a uniform place."""
    top = float(_mel(rate / 2))
    lo_mel = torch.rand(b, device=device) * (1 - width) * top
    hi_mel = lo_mel + width * top
    to_hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)  # noqa: E731
    f = torch.fft.rfftfreq(n, 1 / rate, device=device)[None]  # (1, F)
    return (f >= to_hz(lo_mel)[:, None]) & (f <= to_hz(hi_mel)[:, None])


def freq_mask(x: torch.Tensor, width: torch.Tensor, *, rate: int) -> torch.Tensor:
    """Remove one band per window from its spectrum; the band is ``width`` (a fraction) of the mel range,
    placed uniformly on the mel scale, as SpecAugment masks mel bins."""
    b, n = x.shape
    return torch.fft.irfft(torch.fft.rfft(x) * ~_band(b, n, width, rate=rate, device=x.device), n)


def time_mask(x: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Zero ``width`` samples (per window) at a random place."""
    return x * _time_keep(x, width)


def _time_keep(x: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` bool: False on one stretch of ``width`` samples per window at a random place."""
    b, n = x.shape
    start = torch.rand(b, device=x.device) * (n - width)
    t = torch.arange(n, device=x.device)[None]
    return (t < start[:, None]) | (t >= (start + width)[:, None])


def cutmix_time(x: torch.Tensor, *, alpha: float, p: float) -> torch.Tensor:
    """Splice a stretch of ``1 - lambda`` of the window (lambda ~ Beta(alpha, alpha)) from a random partner
    window of the batch into each window, with probability ``p``."""
    b, n = x.shape
    lam = torch.distributions.Beta(alpha, alpha).sample((b,)).to(x.device)
    width = (1 - lam) * n
    start = torch.rand(b, device=x.device) * (n - width)
    t = torch.arange(n, device=x.device)[None]
    seg = (t >= start[:, None]) & (t < (start + width)[:, None]) & (torch.rand(b, 1, device=x.device) < p)
    return torch.where(seg, x[torch.randperm(b, device=x.device)], x)


def mixup(x: torch.Tensor, *, alpha: float) -> torch.Tensor:
    """Blend each window with a random partner: ``lambda x + (1 - lambda) x_partner``."""
    lam = torch.distributions.Beta(alpha, alpha).sample((x.shape[0], 1)).to(x.device)
    return lam * x + (1 - lam) * x[torch.randperm(x.shape[0], device=x.device)]


class AudioAugmenter(nn.Module):
    """``(B, 1, L)`` windows -> augmented windows of the same shape (see :class:`AudioAugmentConfig`)."""

    def __init__(self, cfg: AudioAugmentConfig, *, rate: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.rate = rate

    @torch.no_grad()
    def forward(self, views: torch.Tensor) -> torch.Tensor:
        cfg, rate, dev = self.cfg, self.rate, views.device
        x = views[:, 0].float()  # (B, L)
        b, n = x.shape
        lo, hi = math.log(cfg.speed[0]), math.log(cfg.speed[1])
        if cfg.speed != (1.0, 1.0) or cfg.shift > 0:
            x = speed_and_shift(x, _uniform(b, lo, hi, dev).exp(), _uniform(b, -cfg.shift, cfg.shift, dev) * rate)
        if cfg.isolate_p > 0:
            alone = isolate(x, (_uniform(b, *cfg.isolate, dev) * rate).clamp(max=n), fade=rate // 100)
            x = torch.where(torch.rand(b, 1, device=dev) < cfg.isolate_p, alone, x)
        if cfg.reverb_p > 0:  # only the windows that get it (an FFT convolution each)
            rt60 = _uniform(b, *cfg.rt60, dev)
            idx = (torch.rand(b, device=dev) < cfg.reverb_p).nonzero()[:, 0]
            if len(idx):
                x = x.clone()
                x[idx] = reverb(x[idx], rt60[idx], rate=rate)
        x = x * 10 ** (_uniform(b, *cfg.gain_db, dev)[:, None] / 20)
        masks = cfg.freq_masks if cfg.freq_mask > 0 else 0
        if cfg.noise_p > 0 or masks:  # noise and frequency masks in one trip through the spectrum
            spec = torch.fft.rfft(x)  # (B, F)
            if cfg.noise_p > 0:
                rms = x.pow(2).mean(1, keepdim=True).sqrt().clamp(min=1e-4)
                snr = _uniform(b, *cfg.snr_db, dev)[:, None]
                on = torch.rand(b, 1, device=dev) < cfg.noise_p
                spec = spec + _noise_spectrum(b, n, rate=rate, device=dev) * (rms / 10 ** (snr / 20) * on)
            if masks:  # the masks also notch the noise, as masks on the noisy spectrogram would
                keep = ~_band(b, n, _uniform(b, 0, cfg.freq_mask, dev), rate=rate, device=dev)
                for _ in range(masks - 1):
                    keep &= ~_band(b, n, _uniform(b, 0, cfg.freq_mask, dev), rate=rate, device=dev)
                torch.view_as_real(spec).mul_(keep[..., None])
            x = torch.fft.irfft(spec, n)
        if cfg.time_masks > 0 and cfg.time_mask > 0:  # all time masks as one product
            keep = _time_keep(x, _uniform(b, 0, cfg.time_mask * rate, dev))
            for _ in range(cfg.time_masks - 1):
                keep &= _time_keep(x, _uniform(b, 0, cfg.time_mask * rate, dev))
            x = x * keep
        if cfg.cutmix > 0 and cfg.cutmix_p > 0:
            x = cutmix_time(x, alpha=cfg.cutmix, p=cfg.cutmix_p)
        if cfg.mixup > 0:
            x = mixup(x, alpha=cfg.mixup)
        return x.unsqueeze(1)  # (B, 1, L)
