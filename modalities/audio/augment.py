"""Training-time augmentation of waveform windows, batched on the device with per-sample random parameters.

Every operation works on the waveform, so teacher and student (which may have different front ends) hear
exactly the same augmented window. SpecAugment's masks are done in the waveform domain too: a time mask
zeroes a stretch of samples, a frequency mask notches a band (chosen on the mel scale) out of the window's
spectrum. Tensors are ``(B, 1, L)`` waveforms throughout.

The batch costs few passes over its samples: the gain rides on the copy that pads the windows for the speed
change (a gather of each output sample's two neighbours and a linear interpolation), the isolated-word
envelope is one multiplication, reverb, noise and frequency masks share one trip through the spectrum
(``rfft``, products, ``irfft``), the time masks touch only the samples they zero, and CutMix
(:func:`aip.mixing.cutmix` along time) is one select.

All randomness is drawn on the tensors' device from torch's global generator, and every operation runs on
every window with parameters that leave a window not drawn as it was, so nothing is read back to the host
and the whole call can be captured into a CUDA graph (:mod:`aip.graphs`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aip import graphs
from aip.mixing import cutmix
from modalities.audio.config import AudioAugmentConfig

_DECAY = 3 * math.log(10)  # a room response falls by 60 dB (a factor 1000) in rt60 seconds


def _uniform(n: int, lo: float, hi: float, device: torch.device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(lo, hi)


def _power(spec: torch.Tensor, n: int) -> torch.Tensor:
    """``(B,)`` mean square of the length-``n`` signals whose ``rfft`` is ``spec`` ``(B, F)`` (Parseval: the
    full spectrum's power over n^2; the rfft bins between DC and Nyquist stand for two bins each)."""
    total = 2 * torch.linalg.vector_norm(torch.view_as_real(spec), dim=(-2, -1)).square()
    total = total - spec[:, 0].abs().square()
    if n % 2 == 0:
        total = total - spec[:, -1].abs().square()
    return total / n**2


def speed_and_shift(x: torch.Tensor, speed: torch.Tensor, shift: torch.Tensor, *,
                    gain: torch.Tensor | None = None) -> torch.Tensor:
    """Play each window ``speed`` times faster (tempo and pitch together) about its centre, moved by ``shift``
    samples, times ``gain``; positions read outside the window are silent. Linear interpolation: a gather of
    each output sample's two neighbours and one ``lerp``.

    Args:
        x: ``(B, L)`` waveforms. speed: ``(B,)`` factors. shift: ``(B,)`` offsets in samples. gain: ``(B,)``
        factors (none: 1).
    """
    b, n = x.shape
    padded = x.new_zeros(b, n + 3)  # a silent sample before the window and two after it
    torch.mul(x, 1.0 if gain is None else gain[:, None], out=padded[:, 1:n + 1])
    t = torch.arange(n, device=x.device, dtype=x.dtype)
    # input position of output sample t, plus 1 for the leading silence, kept within the padding
    pos = torch.outer(speed, t).add_((n / 2 + 1 - (n / 2 + shift) * speed)[:, None]).clamp_(0, n + 1)
    idx = pos.long()  # floor: pos >= 0
    lo = torch.gather(padded, 1, idx)
    return lo.lerp_(torch.gather(padded[:, 1:], 1, idx), pos.frac_())


def _isolate_envelope(n: int, start: torch.Tensor, length: torch.Tensor, *, fade: int) -> torch.Tensor:
    """``(B, L)``: 1 on ``[start, start + length)``, 0 outside it, with ``fade``-sample linear ramps inside its
    ends (a trapezoid; a stretch shorter than two ramps is a triangle)."""
    t = torch.arange(n, device=start.device, dtype=start.dtype)
    half = length / 2
    env = (t - (start + half)[:, None]).abs_()  # distance from the stretch's centre
    return torch.add((half / fade)[:, None], env, alpha=-1 / fade, out=env).clamp_(0, 1)


def isolate(x: torch.Tensor, length: torch.Tensor, *, fade: int) -> torch.Tensor:
    """Keep one random stretch of ``length`` samples per window (with ``fade``-sample ramps) and silence the
    rest, so a stretch of continuous speech sounds like one word alone in a quiet clip."""
    b, n = x.shape
    start = torch.rand(b, device=x.device) * (n - length)
    return x * _isolate_envelope(n, start, length, fade=fade)


def _room_spectrum(b: int, n: int, rt60: torch.Tensor, *, k: int, rate: int, table: torch.Tensor) -> torch.Tensor:
    """``(B, F)`` ``rfft`` (length ``n``) of synthetic room responses of ``k`` samples: a direct path plus
    random-sign noise (:func:`_random_signs`) that decays exponentially, by 60 dB in ``rt60`` ``(B,)``
    seconds."""
    t = torch.arange(k, device=rt60.device, dtype=rt60.dtype) / rate  # (K,) seconds
    ir = _random_signs(b, k, table) * torch.exp(t * (-_DECAY / rt60[:, None])).mul_(0.3)
    ir[:, 0] = 1.0
    return torch.fft.rfft(ir, n)


def _wet(spec: torch.Tensor, room: torch.Tensor, n: int) -> torch.Tensor:
    """Spectra ``spec`` times room responses ``room``, scaled back to the dry loudness (Parseval)."""
    wet = spec * room
    scale = (_power(spec, n) / _power(wet, n).clamp(min=1e-16)).sqrt()
    return wet.mul_(scale[:, None])


def reverb(x: torch.Tensor, rt60: torch.Tensor, *, rate: int) -> torch.Tensor:
    """Convolve each window with a synthetic room response: a direct path plus exponentially decaying noise
    that falls by 60 dB in ``rt60`` seconds, at the dry window's loudness. The convolution is circular at the
    window's length (one product of spectra): the tail that rings past the window's end comes back at its
    start, as a window cut from continuous sound carries the tail of what came before it."""
    b, n = x.shape
    k = min(n, math.ceil(float(rt60.max()) * rate))
    room = _room_spectrum(b, n, rt60, k=k, rate=rate, table=_sign_table(x.device))
    return torch.fft.irfft(_wet(torch.fft.rfft(x), room, n), n)


def _sign_table(device: torch.device | None = None) -> torch.Tensor:
    """``(256, 8)``: row ``i`` holds the 8 bits of ``i`` as -1 or +1."""
    bits = (torch.arange(256, device=device)[:, None] >> torch.arange(8, device=device)) & 1
    return bits.float() * 2 - 1


def _random_signs(b: int, m: int, table: torch.Tensor) -> torch.Tensor:
    """``(b, m)`` independent random -1 or +1 (fair): every random number drawn gives 7 random bytes, and
    every byte 8 signs (its row of ``table``, :func:`_sign_table`), so 56 values cost one draw."""
    groups = -(-m // 8)
    words = -(-groups // 7)
    draws = torch.empty(b, words, dtype=torch.int64, device=table.device).random_()  # 63 random bits each
    octets = draws.view(torch.uint8).view(b, words, 8)[..., :7].reshape(b, words * 7)[:, :groups]
    return torch.nn.functional.embedding(octets.long(), table).view(b, groups * 8)[:, :m]


def _noise_parts(b: int, n: int, scale: torch.Tensor, *, rate: int,
                 table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``rfft`` of noise of random colour per window (spectral slope 1/f^beta, beta in [0, 2]) and RMS
    ``scale`` ``(B,)``, as the product of random signs and magnitudes, both ``(B, 2 F)``: the real and
    imaginary parts of each bin side by side (``view_as_real(spec).flatten(1)``'s layout).

    Drawn directly in the frequency domain, as coloured magnitudes with random phases: both parts of a bin
    have the colour's magnitude and a random sign (one of four phases, :func:`_random_signs`), so the RMS is
    exact by Parseval and the waveform Gaussian by the central limit theorem, as is every short-time
    spectrum a model computes from it. DC and Nyquist carry no noise."""
    bins = n // 2 + 1
    dev = scale.device
    log_f = torch.fft.rfftfreq(n, 1 / rate, device=dev).clamp_(min=20.0).log_()  # (F,)
    log_f = log_f[:, None].expand(bins, 2).reshape(2 * bins)  # each bin's twice: real and imaginary part
    beta = torch.rand(b, device=dev) * 2
    colour = torch.outer(beta / -2, log_f).exp_()  # (B, 2F) magnitudes
    colour[:, :2] = 0.0
    if n % 2 == 0:
        colour[:, -2:] = 0.0
    # Parseval: the bins between DC and Nyquist stand for two each, so the mean square is 2 |colour|^2 / n^2
    rms = torch.linalg.vector_norm(colour, dim=1) * (math.sqrt(2) / n)
    colour.mul_((scale / rms.clamp(min=1e-30))[:, None])
    return _random_signs(b, 2 * bins, table), colour


def coloured_noise_like(x: torch.Tensor, *, rate: int) -> torch.Tensor:
    """Unit-RMS noise of random colour per window (spectral slope 1/f^beta, beta in [0, 2])."""
    b, n = x.shape
    signs, colour = _noise_parts(b, n, torch.ones(b, device=x.device), rate=rate, table=_sign_table(x.device))
    return torch.fft.irfft(torch.view_as_complex((signs * colour).view(b, -1, 2)), n)


def _to_hz(mel: torch.Tensor) -> torch.Tensor:
    return (torch.pow(10.0, mel / 2595.0) - 1.0) * 700.0


def _band(b: int, n: int, width: torch.Tensor, *, rate: int, device: torch.device) -> torch.Tensor:
    """``(B, F)`` masks of one band per window: ``width`` (a fraction) of the mel range at a uniform place."""
    top = 2595.0 * math.log10(1.0 + rate / 2 / 700.0)  # the mel of Nyquist
    lo_mel = torch.rand(b, device=device) * (1 - width) * top
    f = torch.fft.rfftfreq(n, 1 / rate, device=device)  # (F,)
    return (f >= _to_hz(lo_mel)[:, None]) & (f <= _to_hz(lo_mel + width * top)[:, None])


def freq_mask(x: torch.Tensor, width: torch.Tensor, *, rate: int) -> torch.Tensor:
    """Remove one band per window from its spectrum; the band is ``width`` (a fraction) of the mel range,
    placed uniformly on the mel scale, as SpecAugment masks mel bins."""
    b, n = x.shape
    return torch.fft.irfft(torch.fft.rfft(x) * ~_band(b, n, width, rate=rate, device=x.device), n)


def _zero_stretches(x: torch.Tensor, start: torch.Tensor, width: torch.Tensor, *, longest: int) -> torch.Tensor:
    """Zero, in place, the samples ``t`` with ``start <= t < start + width`` of each row of ``x`` ``(B, L)``,
    one stretch per column of ``start`` and ``width`` ``(B, M)``, at most ``longest`` samples each: a
    scatter over those samples only (fixed shape; its unused slots multiply by 1)."""
    first = start.ceil()
    count = (start + width).ceil() - first  # (B, M) whole samples inside [start, start + width)
    j = torch.arange(longest, device=x.device, dtype=x.dtype)
    idx = (first[..., None] + j).clamp_(0, x.shape[1] - 1).long().flatten(1)  # (B, M * longest)
    keep = (j >= count[..., None]).to(x.dtype).flatten(1)
    return x.scatter_reduce_(1, idx, keep, "prod")


def time_mask(x: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Zero ``width`` samples (per window) at a random place."""
    b, n = x.shape
    start = torch.rand(b, device=x.device) * (n - width)
    return _zero_stretches(x.clone(), start[:, None], width[:, None], longest=max(1, math.ceil(float(width.max()))))


def mixup(x: torch.Tensor, *, alpha: float) -> torch.Tensor:
    """Blend each window with a random partner: ``lambda x + (1 - lambda) x_partner``."""
    lam = graphs.beta(alpha, x.shape[0], x.device)[:, None]
    return x.index_select(0, graphs.permutation(x.shape[0], x.device)).lerp_(x, lam)


class AudioAugmenter(nn.Module):
    """``(B, 1, L)`` windows -> augmented windows of the same shape (see :class:`AudioAugmentConfig`).

    Nothing is read back to the host, so a CUDA graph can capture it (``capturable``).
    """

    def __init__(self, cfg: AudioAugmentConfig, *, rate: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.rate = rate
        self.capturable = True
        self.register_buffer("signs", _sign_table(), persistent=False)

    @torch.no_grad()
    def forward(self, views: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        x = self._windows(views[:, 0].float())  # (B, L)
        # a stretch of 1 - lambda of the window from a partner window, inside the window
        x = cutmix(x, alpha=cfg.cutmix, p=cfg.cutmix_p, dims=1, inside=True)
        if cfg.mixup > 0:
            x = mixup(x, alpha=cfg.mixup)
        return x.unsqueeze(1)  # (B, 1, L)

    def _windows(self, x: torch.Tensor) -> torch.Tensor:
        """Everything but CutMix and MixUp on ``(B, L)`` windows (each on its own), into a new tensor."""
        cfg, rate, dev = self.cfg, self.rate, x.device
        b, n = x.shape
        gain = torch.pow(10.0, _uniform(b, *cfg.gain_db, dev) / 20)
        if cfg.speed != (1.0, 1.0) or cfg.shift > 0:  # the gain rides on the interpolation's copy
            speed = _uniform(b, math.log(cfg.speed[0]), math.log(cfg.speed[1]), dev).exp_()
            x = speed_and_shift(x, speed, _uniform(b, -cfg.shift, cfg.shift, dev) * rate, gain=gain)
        else:
            x = x * gain[:, None]
        if cfg.isolate_p > 0:  # a window that keeps everything gets a stretch far wider than itself
            length = (_uniform(b, *cfg.isolate, dev) * rate).clamp_(max=n)
            start = torch.rand(b, device=dev) * (n - length)
            alone = torch.rand(b, device=dev) < cfg.isolate_p
            x.mul_(_isolate_envelope(n, torch.where(alone, start, -n), torch.where(alone, length, 3 * n),
                                     fade=rate // 100))
        masks = cfg.freq_masks if cfg.freq_mask > 0 else 0
        if cfg.reverb_p > 0 or cfg.noise_p > 0 or masks:  # one trip through the spectrum
            if cfg.noise_p > 0:  # the reverb keeps the loudness: the noise's level is set by the dry window
                rms = (torch.linalg.vector_norm(x, dim=1) / math.sqrt(n)).clamp_(min=1e-4)
            spec = torch.fft.rfft(x)  # (B, F)
            if cfg.reverb_p > 0:
                spec = self._reverb(spec, n)
            if cfg.noise_p > 0:
                on = torch.rand(b, device=dev) < cfg.noise_p
                level = rms * torch.pow(10.0, _uniform(b, *cfg.snr_db, dev) / -20) * on
                torch.view_as_real(spec).flatten(1).addcmul_(*_noise_parts(b, n, level, rate=rate,
                                                                            table=self.signs))
            if masks:  # the masks also notch the noise, as masks on the noisy spectrogram would
                band = _band(b, n, _uniform(b, 0, cfg.freq_mask, dev), rate=rate, device=dev)
                for _ in range(masks - 1):
                    band |= _band(b, n, _uniform(b, 0, cfg.freq_mask, dev), rate=rate, device=dev)
                spec.masked_fill_(band, 0)
            x = torch.fft.irfft(spec, n)
        if cfg.time_masks > 0 and cfg.time_mask > 0:
            width = _uniform(b * cfg.time_masks, 0, cfg.time_mask * rate, dev).view(b, cfg.time_masks)
            start = torch.rand(b, cfg.time_masks, device=dev) * (n - width)
            _zero_stretches(x, start, width, longest=math.ceil(cfg.time_mask * rate))
        return x

    def _reverb(self, spec: torch.Tensor, n: int) -> torch.Tensor:
        """Room responses on a random ``reverb_p`` of the windows' spectra ``spec`` ``(B, F)``: circular
        convolution at the window's length, at the dry loudness (see :func:`reverb`); every window's is
        computed and kept where drawn."""
        cfg, b, dev = self.cfg, spec.shape[0], spec.device
        rt60 = _uniform(b, *cfg.rt60, dev)
        on = torch.rand(b, device=dev) < cfg.reverb_p
        k = min(n, math.ceil(cfg.rt60[1] * self.rate))
        wet = _wet(spec, _room_spectrum(b, n, rt60, k=k, rate=self.rate, table=self.signs), n)
        return torch.where(on[:, None], wet, spec)
