"""Audio augmentation: shapes, and that each waveform operation does what it says."""

from __future__ import annotations

import math

import torch

from modalities.audio import augment as A
from modalities.audio.config import AudioAugmentConfig

RATE = 16_000


def sine(freq: float, n: int = RATE, b: int = 4) -> torch.Tensor:
    t = torch.arange(n) / RATE
    return (0.5 * torch.sin(2 * math.pi * freq * t)).repeat(b, 1)


def peak_hz(x: torch.Tensor) -> float:
    return float(torch.fft.rfft(x).abs().argmax()) * RATE / x.shape[-1]


def test_speed_changes_pitch_and_shift_moves():
    x = sine(500.0, b=1)
    fast = A.speed_and_shift(x, torch.tensor([1.25]), torch.tensor([0.0]))
    assert abs(peak_hz(fast[0, 4000:12000]) - 625) < 10
    assert fast[0, :1000].abs().max() == 0  # read from before the window: silent
    ramp = torch.arange(1000.0)[None]
    moved = A.speed_and_shift(ramp, torch.tensor([1.0]), torch.tensor([10.0]))
    # interpolation positions are normalised to [-1, 1] in float32: exact to about 1e-4 of a sample here
    assert torch.allclose(moved[0, 10:], ramp[0, :-10], atol=1e-3) and moved[0, :10].abs().max() == 0


def test_reverb_keeps_loudness_and_adds_a_tail():
    x = torch.zeros(2, RATE)
    x[:, 1000] = 1.0  # a click
    wet = A.reverb(x, torch.tensor([0.3, 0.3]), rate=RATE)
    assert wet.shape == x.shape
    assert torch.allclose(wet.pow(2).mean(1), x.pow(2).mean(1), rtol=1e-3)
    assert wet[:, 1500:5000].abs().max() > 0  # the decaying tail after the click
    assert wet[:, :999].abs().max() < 1e-4  # causal


def test_noise_is_unit_rms_and_freq_mask_removes_a_band():
    noise = A.coloured_noise_like(torch.zeros(3, RATE), rate=RATE)
    assert torch.allclose(noise.pow(2).mean(1), torch.ones(3), rtol=1e-3)
    x = torch.randn(1, RATE)
    masked = A.freq_mask(x, torch.tensor([0.3]), rate=RATE)
    spec = torch.fft.rfft(masked).abs()[0]
    removed = (spec < 1e-3).float().mean()
    assert 0.05 < removed < 0.9  # a band, not everything


def test_time_mask_cutmix_and_mixup():
    x = torch.ones(4, RATE)
    masked = A.time_mask(x, torch.full((4,), 800.0))
    assert torch.all((masked == 0).sum(1) == 800)
    b = torch.arange(8.0)[:, None].repeat(1, RATE)  # window i is constant i
    torch.manual_seed(0)
    mixed = A.cutmix_time(b, alpha=1.0, p=1.0)
    for i in range(8):
        values = mixed[i].unique()
        assert i in values.tolist() or len(values) == 1
        assert len(values) <= 2  # its own samples and one partner's stretch
    assert not torch.equal(mixed, b)
    blended = A.mixup(b, alpha=1.0)
    assert torch.all(blended.std(1) == 0) and not torch.equal(blended, b)


def test_augmenter_shapes_determinism_and_identity_settings():
    views = sine(300.0).unsqueeze(1)  # (4, 1, L)
    aug = A.AudioAugmenter(AudioAugmentConfig(), rate=RATE)
    torch.manual_seed(1)
    a = aug(views)
    torch.manual_seed(1)
    b = aug(views)
    assert a.shape == views.shape and torch.equal(a, b) and torch.isfinite(a).all()
    off = AudioAugmentConfig(gain_db=(0.0, 0.0), speed=(1.0, 1.0), shift=0.0, reverb_p=0.0, noise_p=0.0,
                             time_masks=0, freq_masks=0, cutmix=0.0)
    assert torch.allclose(A.AudioAugmenter(off, rate=RATE)(views), views)
    loud = AudioAugmentConfig(gain_db=(6.0, 6.0), speed=(1.0, 1.0), shift=0.0, reverb_p=0.0, noise_p=1.0,
                              snr_db=(10.0, 10.0), time_masks=0, freq_masks=0, cutmix=0.0)
    out = A.AudioAugmenter(loud, rate=RATE)(views)
    signal = views * 10 ** (6 / 20)
    snr = 10 * torch.log10(signal.pow(2).mean() / (out - signal).pow(2).mean())
    assert abs(float(snr) - 10.0) < 0.5


def test_isolate_keeps_one_stretch_and_silences_the_rest():
    x = torch.ones(3, RATE)
    out = A.isolate(x, torch.tensor([4000.0, 8000.0, 1000.0]), fade=160)
    kept = (out > 0).sum(1).float()
    assert torch.allclose(kept, torch.tensor([4000.0, 8000.0, 1000.0]), atol=2)
    for row in out:
        nz = torch.nonzero(row)[:, 0]
        assert int(nz[-1] - nz[0]) + 1 == len(nz)  # one contiguous stretch
    assert out.max() == 1.0 and out[0][out[0] > 0].min() < 0.05  # faded in and out
