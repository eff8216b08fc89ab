"""Audio augmentation: shapes, that each waveform operation does what it says, and that the augmenter reads
nothing back to the host (so a CUDA graph can capture it)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from aip.graphs import HostReadError, forbid_host_reads
from aip.mixing import cutmix
from modalities.audio import augment as A
from modalities.audio.config import AudioAugmentConfig
from modalities.audio.source import WindowSampler

RATE = 16_000
#: every operation off: the augmenter is the identity
OFF = AudioAugmentConfig(gain_db=(0.0, 0.0), speed=(1.0, 1.0), shift=0.0, reverb_p=0.0, noise_p=0.0,
                         time_masks=0, freq_masks=0, cutmix=0.0)


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
    assert wet[:, 1000 + int(0.3 * RATE) + 10:].abs().max() < 1e-4  # and no longer than the room response


def test_reverb_is_circular_the_tail_past_the_end_rings_at_the_start():
    x = torch.zeros(2, RATE)
    x[:, RATE - 500] = 1.0  # a click 31 ms before the end of the window
    speech = torch.sin(torch.arange(RATE) * 0.05)[None] * torch.rand(2, 1)
    wet = A.reverb(torch.cat([x, speech]), torch.tensor([0.5, 0.5, 0.2, 0.6]), rate=RATE)
    assert torch.allclose(wet[:2].pow(2).mean(1), x.pow(2).mean(1), rtol=1e-3)
    assert torch.allclose(wet[2:].pow(2).mean(1), speech.pow(2).mean(1), rtol=1e-3)  # dry loudness kept
    assert wet[:2, : RATE - 501].abs().max() > 1e-3  # its tail, wrapped round to the window's start
    head = wet[:2, :2000].abs().mean(1)
    assert torch.all(head > wet[:2, 6000:8000].abs().mean(1) * 3)  # decaying from there on


def test_noise_is_unit_rms_gaussian_and_freq_mask_removes_a_band():
    noise = A.coloured_noise_like(torch.zeros(3, RATE), rate=RATE)
    assert torch.allclose(noise.pow(2).mean(1), torch.ones(3), rtol=1e-3)
    torch.manual_seed(0)
    noise = A.coloured_noise_like(torch.zeros(100, RATE), rate=RATE)
    centred = noise - noise.mean(1, keepdim=True)
    kurtosis = centred.pow(4).mean(1) / centred.pow(2).mean(1).square()
    assert abs(float(kurtosis.mean()) - 3) < 0.2  # random phases: Gaussian samples (a Gaussian's is 3)
    slope = torch.fft.rfft(noise).abs().square()  # colours: from white to brown
    ratio = slope[:, 100:200].mean(1) / slope[:, 4000:5000].mean(1)  # 100-200 Hz against 4-5 kHz
    assert ratio.min() < 3 and ratio.max() > 300
    x = torch.randn(1, RATE)
    masked = A.freq_mask(x, torch.tensor([0.3]), rate=RATE)
    spec = torch.fft.rfft(masked).abs()[0]
    removed = (spec < 1e-3).float().mean()
    assert 0.05 < removed < 0.9  # a band, not everything


def test_random_signs_are_fair_in_every_position():
    torch.manual_seed(0)
    s = A._random_signs(4000, 120, A._sign_table())
    assert s.shape == (4000, 120) and set(s.unique().tolist()) == {-1.0, 1.0}
    assert s.mean(0).abs().max() < 0.08  # each of the 56 bits of a draw, and past it: fair (sd 0.016)
    assert abs(float((s[:, :-1] * s[:, 1:]).mean())) < 0.01  # neighbours independent


def test_time_mask_cutmix_and_mixup():
    x = torch.ones(4, RATE)
    masked = A.time_mask(x, torch.full((4,), 800.0))
    assert torch.all((masked == 0).sum(1) == 800)
    runs = (masked[:, 1:] != masked[:, :-1]).sum(1)
    assert torch.all(runs <= 2) and torch.equal(x, torch.ones(4, RATE))  # one stretch; input untouched
    two = torch.ones(3, 100)
    A._zero_stretches(two, torch.tensor([[10.0, 50.2], [0.0, 95.5], [-3.0, 20.0]]),
                      torch.tensor([[5.0, 0.5], [2.0, 30.0], [5.0, 0.0]]), longest=40)
    assert (two[0] == 0).nonzero()[:, 0].tolist() == list(range(10, 15))  # [50.2, 50.7) holds no sample
    assert (two[1] == 0).nonzero()[:, 0].tolist() == [0, 1, 96, 97, 98, 99]  # clipped at the end
    assert (two[2] == 0).nonzero()[:, 0].tolist() == [0, 1]  # [-3, 2) clipped at the start
    b = torch.arange(8.0)[:, None].repeat(1, RATE)  # window i is constant i
    torch.manual_seed(0)
    mixed = cutmix(b, alpha=1.0, dims=1, inside=True)  # the augmenter's CutMix along time
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
    assert torch.allclose(A.AudioAugmenter(OFF, rate=RATE)(views), views)
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


def test_isolate_envelope_is_a_trapezoid_and_off_windows_keep_everything():
    env = A._isolate_envelope(1000, torch.tensor([100.0, -1000.0]), torch.tensor([400.0, 3000.0]), fade=10)
    assert torch.all(env[0, :100] == 0) and torch.all(env[0, 500:] == 0)
    assert torch.allclose(env[0, 110:490], torch.ones(380))
    assert torch.allclose(env[0, 100:110], torch.arange(10.0) / 10, atol=1e-5)
    assert torch.all(env[1] == 1)  # a stretch wider than the window: the augmenter's way to skip one


FULL = AudioAugmentConfig(isolate_p=0.5, reverb_p=0.3, noise_p=0.7, mixup=0.4)  # every operation on


def _parts(cfg: AudioAugmentConfig):
    wave = torch.sin(torch.arange(3 * RATE) * 0.03) * torch.linspace(0.1, 1, 3 * RATE)
    return WindowSampler(wave, samples=RATE, device=torch.device("cpu")), A.AudioAugmenter(cfg, rate=RATE)


def test_augmenter_reads_nothing_back():
    sampler, augmenter = _parts(FULL)
    assert augmenter.capturable and sampler.capturable
    torch.manual_seed(0)
    with forbid_host_reads():
        x = augmenter(sampler.sample(64))
    assert x.shape == (64, 1, RATE) and torch.isfinite(x).all() and x.abs().max() > 0
    # the stand-alone reverb sizes its response from the longest rt60 on the host: the check can fail
    with pytest.raises(HostReadError), forbid_host_reads():
        A.reverb(torch.rand(2, 100), torch.tensor([0.1, 0.2]), rate=RATE)  # float(rt60.max())


def test_reverb_reaches_reverb_p_of_the_windows():
    """The reverb (here the only operation) changes about ``reverb_p`` of the windows and keeps every
    window's loudness."""
    cfg = dataclasses.replace(OFF, reverb_p=0.3)
    sampler, augmenter = _parts(cfg)
    torch.manual_seed(1)
    dry = sampler.sample(400)
    wet = augmenter(dry)
    changed = ((wet - dry).abs().amax(-1) > 1e-3).float().mean()
    assert abs(float(changed) - 0.3) < 0.08  # binomial sd 0.023
    assert torch.allclose(wet.pow(2).mean(-1), dry.pow(2).mean(-1), rtol=1e-3)


def test_noise_snr_stays_in_its_range():
    cfg = dataclasses.replace(OFF, noise_p=1.0, snr_db=(5.0, 30.0))
    sampler, augmenter = _parts(cfg)
    torch.manual_seed(2)
    dry = sampler.sample(200)
    noisy = augmenter(dry)
    snr = 10 * torch.log10(dry.pow(2).mean(-1) / (noisy - dry).pow(2).mean(-1))
    assert snr.min() > 5 - 0.05 and snr.max() < 30 + 0.05  # exact by Parseval
    assert snr.min() < 7 and snr.max() > 28 and abs(float(snr.mean()) - 17.5) < 1.5  # uniform in dB


def test_cutmix_splices_cutmix_p_of_the_windows():
    cfg = dataclasses.replace(OFF, cutmix=1.0, cutmix_p=0.4)
    views = torch.arange(2000.0)[:, None, None].expand(2000, 1, 800).contiguous()  # window i is constant i
    torch.manual_seed(4)
    out = A.AudioAugmenter(cfg, rate=RATE)(views)
    spliced = (out != views).any(-1)[:, 0]
    assert abs(float(spliced.float().mean()) - 0.4) < 0.04  # a few stretches are empty or the window's own
    pasted = (out != views).float().sum(-1)[spliced] / 800
    assert abs(float(pasted.mean()) - 0.5) < 0.05  # 1 - lambda, lambda ~ Beta(1, 1), inside the window


def test_noise_and_time_masks_on_every_window():
    """Each window gets its own noise at the drawn SNR and its own time masks, the rest of it untouched."""
    views = torch.randn(7, 1, RATE) * 0.1
    assert torch.equal(A.AudioAugmenter(OFF, rate=RATE)(views), views)
    loud = dataclasses.replace(OFF, noise_p=1.0, snr_db=(10.0, 10.0), time_masks=2, time_mask=0.05)
    out = A.AudioAugmenter(loud, rate=RATE)(views)
    kept = out != 0  # outside the time masks: the window plus noise at 10 dB
    zeros = (~kept).sum(-1)
    assert out.shape == views.shape and torch.all(zeros <= 1600)
    snr = 10 * torch.log10((views * kept).pow(2).sum(-1) / ((out - views) * kept).pow(2).sum(-1))
    assert torch.all((snr - 10).abs() < 1)
