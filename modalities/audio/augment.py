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


#: waveform samples per chunk of :func:`speed_and_shift` on the CPU (16 one-second windows at 16 kHz): each
#: chunk's padded copy, positions and gathers then stay in the cache, which made the speed change 3 times
#: faster for 384 windows on 2 cores, and the whole augmentation 5 to 10 % (measured against the whole batch
#: at once); :meth:`AudioAugmenter._windows` is chunked the same way
CPU_CHUNK_SAMPLES = 1 << 18


def speed_and_shift(x: torch.Tensor, speed: torch.Tensor, shift: torch.Tensor, *,
                    gain: torch.Tensor | None = None) -> torch.Tensor:
    """Play each window ``speed`` times faster (tempo and pitch together) about its centre, moved by ``shift``
    samples, times ``gain``; positions read outside the window are silent. Linear interpolation: a gather of
    each output sample's two neighbours and one ``lerp``. On the CPU a few windows at a time
    (:data:`CPU_CHUNK_SAMPLES`), in one piece elsewhere and when compiled.

    Args:
        x: ``(B, L)`` waveforms. speed: ``(B,)`` factors. shift: ``(B,)`` offsets in samples. gain: ``(B,)``
        factors (none: 1).
    """
    b, n = x.shape
    rows = max(1, CPU_CHUNK_SAMPLES // n)
    if x.device.type != "cpu" or b <= rows or torch.compiler.is_compiling():
        return _speed_and_shift(x, speed, shift, gain)
    out = torch.empty_like(x)
    for i in range(0, b, rows):
        part = slice(i, i + rows)
        out[part] = _speed_and_shift(x[part], speed[part], shift[part], None if gain is None else gain[part])
    return out


def _speed_and_shift(x: torch.Tensor, speed: torch.Tensor, shift: torch.Tensor,
                     gain: torch.Tensor | None) -> torch.Tensor:
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


def _room_spectrum(b: int, n: int, rt60: torch.Tensor, *, k: int, rate: int, table: torch.Tensor,
                   words: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, F)`` ``rfft`` (length ``n``) of synthetic room responses of ``k`` samples: a direct path plus
    random-sign noise (:func:`_random_signs`; from ``words``, :func:`_sign_words`, when given) that decays
    exponentially, by 60 dB in ``rt60`` ``(B,)`` seconds."""
    t = torch.arange(k, device=rt60.device, dtype=rt60.dtype) / rate  # (K,) seconds
    signs = _random_signs(b, k, table) if words is None else _signs(words, k, table)
    ir = signs * torch.exp(t * (-_DECAY / rt60[:, None])).mul_(0.3)
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
    return _signs(_sign_words(b, m, table.device), m, table)


def _sign_words(b: int, m: int, device: torch.device) -> torch.Tensor:
    """The ``(b, ceil(ceil(m / 8) / 7))`` random int64 words :func:`_random_signs` turns into ``m`` signs a row."""
    groups = -(-m // 8)  # bytes: 8 signs each
    return torch.empty(b, -(-groups // 7), dtype=torch.int64, device=device).random_()  # 63 random bits: 7 bytes


def _signs(draws: torch.Tensor, m: int, table: torch.Tensor) -> torch.Tensor:
    """``(b, m)`` signs from the random words ``draws`` of :func:`_sign_words`."""
    b, words = draws.shape
    groups = -(-m // 8)
    octets = draws.view(torch.uint8).view(b, words, 8)[..., :7].reshape(b, words * 7)[:, :groups]
    return torch.nn.functional.embedding(octets.long(), table).view(b, groups * 8)[:, :m]


def _noise_parts(b: int, n: int, scale: torch.Tensor, *, rate: int, table: torch.Tensor,
                 beta: torch.Tensor | None = None, words: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``rfft`` of noise of random colour per window (spectral slope 1/f^beta, beta in [0, 2]) and RMS
    ``scale`` ``(B,)``, as the product of random signs and magnitudes, both ``(B, 2 F)``: the real and
    imaginary parts of each bin side by side (``view_as_real(spec).flatten(1)``'s layout).

    Drawn directly in the frequency domain, as coloured magnitudes with random phases: both parts of a bin
    have the colour's magnitude and a random sign (one of four phases, :func:`_random_signs`), so the RMS is
    exact by Parseval and the waveform Gaussian by the central limit theorem, as is every short-time
    spectrum a model computes from it. DC and Nyquist carry no noise. ``beta`` ``(B,)`` and the sign ``words``
    (:func:`_sign_words`) are drawn here unless given."""
    bins = n // 2 + 1
    dev = scale.device
    log_f = torch.fft.rfftfreq(n, 1 / rate, device=dev).clamp_(min=20.0).log_()  # (F,)
    log_f = log_f[:, None].expand(bins, 2).reshape(2 * bins)  # each bin's twice: real and imaginary part
    beta = torch.rand(b, device=dev) * 2 if beta is None else beta
    colour = torch.outer(beta / -2, log_f).exp_()  # (B, 2F) magnitudes
    colour[:, :2] = 0.0
    if n % 2 == 0:
        colour[:, -2:] = 0.0
    # Parseval: the bins between DC and Nyquist stand for two each, so the mean square is 2 |colour|^2 / n^2
    rms = torch.linalg.vector_norm(colour, dim=1) * (math.sqrt(2) / n)
    colour.mul_((scale / rms.clamp(min=1e-30))[:, None])
    signs = _random_signs(b, 2 * bins, table) if words is None else _signs(words, 2 * bins, table)
    return signs, colour


def coloured_noise_like(x: torch.Tensor, *, rate: int) -> torch.Tensor:
    """Unit-RMS noise of random colour per window (spectral slope 1/f^beta, beta in [0, 2])."""
    b, n = x.shape
    signs, colour = _noise_parts(b, n, torch.ones(b, device=x.device), rate=rate, table=_sign_table(x.device))
    return torch.fft.irfft(torch.view_as_complex((signs * colour).view(b, -1, 2)), n)


def _to_hz(mel: torch.Tensor) -> torch.Tensor:
    return (torch.pow(10.0, mel / 2595.0) - 1.0) * 700.0


def _band(b: int, n: int, width: torch.Tensor, *, rate: int, device: torch.device,
          place: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, F)`` masks of one band per window: ``width`` (a fraction) of the mel range at a uniform place
    (``place`` ``(B,)`` in [0, 1), drawn here unless given)."""
    top = 2595.0 * math.log10(1.0 + rate / 2 / 700.0)  # the mel of Nyquist
    place = torch.rand(b, device=device) if place is None else place
    lo_mel = place * (1 - width) * top
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
        """Everything but CutMix and MixUp on ``(B, L)`` windows (each on its own), into a new tensor: every
        random number first (:meth:`_draw`), then the operations (:meth:`_augment`), on the CPU a few windows at
        a time (:data:`CPU_CHUNK_SAMPLES`) so that each chunk's spectra stay in the cache. The draws do not
        depend on the chunking, so neither do the windows (up to float rounding)."""
        b, n = x.shape
        drawn = self._draw(b, n, x.device)
        rows = max(1, CPU_CHUNK_SAMPLES // n)
        if x.device.type != "cpu" or b <= rows or torch.compiler.is_compiling():
            return self._augment(x, drawn)
        out = torch.empty_like(x)
        for i in range(0, b, rows):
            part = slice(i, i + rows)
            out[part] = self._augment(x[part], {k: v[part] for k, v in drawn.items()})
        return out

    def _draw(self, b: int, n: int, dev: torch.device) -> dict[str, torch.Tensor]:
        """Every random number of :meth:`_augment` for ``b`` windows of ``n`` samples, one tensor per quantity with
        the window as its first dimension."""
        cfg, rate = self.cfg, self.rate
        d = {"gain": torch.pow(10.0, _uniform(b, *cfg.gain_db, dev) / 20)}
        if cfg.speed != (1.0, 1.0) or cfg.shift > 0:
            d["speed"] = _uniform(b, math.log(cfg.speed[0]), math.log(cfg.speed[1]), dev).exp_()
            d["shift"] = _uniform(b, -cfg.shift, cfg.shift, dev) * rate
        if cfg.isolate_p > 0:  # a window that keeps everything gets a stretch far wider than itself
            length = (_uniform(b, *cfg.isolate, dev) * rate).clamp_(max=n)
            start = torch.rand(b, device=dev) * (n - length)
            alone = torch.rand(b, device=dev) < cfg.isolate_p
            d["alone_start"], d["alone_length"] = torch.where(alone, start, -n), torch.where(alone, length, 3 * n)
        if cfg.reverb_p > 0:
            d["rt60"] = _uniform(b, *cfg.rt60, dev)
            d["reverb_on"] = torch.rand(b, device=dev) < cfg.reverb_p
            d["room_words"] = _sign_words(b, min(n, math.ceil(cfg.rt60[1] * rate)), dev)
        if cfg.noise_p > 0:
            on = torch.rand(b, device=dev) < cfg.noise_p
            d["noise_level"] = torch.pow(10.0, _uniform(b, *cfg.snr_db, dev) / -20) * on  # times the window's RMS
            d["noise_beta"] = torch.rand(b, device=dev) * 2
            d["noise_words"] = _sign_words(b, 2 * (n // 2 + 1), dev)
        for i in range(cfg.freq_masks if cfg.freq_mask > 0 else 0):
            d[f"band_width_{i}"] = _uniform(b, 0, cfg.freq_mask, dev)
            d[f"band_place_{i}"] = torch.rand(b, device=dev)
        if cfg.time_masks > 0 and cfg.time_mask > 0:
            width = _uniform(b * cfg.time_masks, 0, cfg.time_mask * rate, dev).view(b, cfg.time_masks)
            d["mask_width"], d["mask_start"] = width, torch.rand(b, cfg.time_masks, device=dev) * (n - width)
        return d

    def _augment(self, x: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
        """The augmentations of :meth:`_windows` on ``(B, L)`` windows, with the random numbers ``d`` of
        :meth:`_draw`; no random number is drawn here."""
        cfg, rate, dev = self.cfg, self.rate, x.device
        b, n = x.shape
        if "speed" in d:  # the gain rides on the interpolation's copy
            x = _speed_and_shift(x, d["speed"], d["shift"], d["gain"])
        else:
            x = x * d["gain"][:, None]
        if "alone_start" in d:
            x.mul_(_isolate_envelope(n, d["alone_start"], d["alone_length"], fade=rate // 100))
        masks = cfg.freq_masks if cfg.freq_mask > 0 else 0
        if cfg.reverb_p > 0 or cfg.noise_p > 0 or masks:  # one trip through the spectrum
            if cfg.noise_p > 0:  # the reverb keeps the loudness: the noise's level is set by the dry window
                rms = (torch.linalg.vector_norm(x, dim=1) / math.sqrt(n)).clamp_(min=1e-4)
            spec = torch.fft.rfft(x)  # (B, F)
            if cfg.reverb_p > 0:  # every window's room is computed and kept where drawn
                k = min(n, math.ceil(cfg.rt60[1] * rate))
                room = _room_spectrum(b, n, d["rt60"], k=k, rate=rate, table=self.signs, words=d["room_words"])
                spec = torch.where(d["reverb_on"][:, None], _wet(spec, room, n), spec)
            if cfg.noise_p > 0:
                torch.view_as_real(spec).flatten(1).addcmul_(*_noise_parts(
                    b, n, rms * d["noise_level"], rate=rate, table=self.signs, beta=d["noise_beta"],
                    words=d["noise_words"]))
            if masks:  # the masks also notch the noise, as masks on the noisy spectrogram would
                band = _band(b, n, d["band_width_0"], rate=rate, device=dev, place=d["band_place_0"])
                for i in range(1, masks):
                    band |= _band(b, n, d[f"band_width_{i}"], rate=rate, device=dev, place=d[f"band_place_{i}"])
                spec.masked_fill_(band, 0)
            x = torch.fft.irfft(spec, n)
        if "mask_width" in d:
            _zero_stretches(x, d["mask_start"], d["mask_width"], longest=math.ceil(cfg.time_mask * rate))
        return x
