"""Audio models: every registered name gives logits of the right shape from waveforms; errors list names."""

from __future__ import annotations

import pytest
import torch

from aip.errors import AipError
from modalities.audio import models


@pytest.mark.parametrize("name", models.NETWORKS.names())
def test_every_network_gives_logits(name: str):
    torch.manual_seed(0)
    kwargs = {"width": 4} if name == "cnn" else {}
    m = models.build(name, num_classes=12, rate=16_000, kwargs=kwargs)
    out = m.eval()(torch.randn(2, 1, 16_000) * 0.1)
    assert out.shape == (2, 12) and torch.isfinite(out).all()


def test_bcresnet_widths_scale_parameters_and_other_mel_counts_work():
    sizes = [sum(p.numel() for p in models.build(f"bcresnet{w}", num_classes=12, rate=16_000).parameters())
             for w in (1, 2, 3)]
    assert sizes[0] < sizes[1] < sizes[2]
    m = models.build("bcresnet", num_classes=35, rate=16_000, kwargs={"width": 1.5, "n_mels": 40})
    assert m.front.mel.n_mels == 40
    assert m.eval()(torch.randn(2, 1, 16_000)).shape == (2, 35)


def test_timm_network_on_log_mels_and_front_end_kwargs():
    m = models.build("timm:efficientnet_b0", num_classes=12, rate=16_000,
                     kwargs={"n_mels": 32, "hop_ms": 20.0, "drop_rate": 0.0})
    assert m.front.mel.n_mels == 32 and m.front.mel.hop_length == 320
    assert m.eval()(torch.randn(2, 1, 16_000)).shape == (2, 12)
    assert m(torch.randn(2, 16_000)).shape == (2, 12)  # (B, samples) is accepted too


def test_errors():
    with pytest.raises(AipError, match=r"unknown audio model 'bcresnet4'.*known: bcresnet, bcresnet1"):
        models.build("bcresnet4", num_classes=12, rate=16_000)
    with pytest.raises(AipError, match="no pretrained weights"):
        models.build("cnn", num_classes=12, rate=16_000, pretrained=True)
    with pytest.raises(AipError, match="does not take these kwargs"):
        models.build("cnn", num_classes=12, rate=16_000, kwargs={"depth": 3})
    with pytest.raises(AipError, match="timm has no model"):
        models.build("timm:no_such_net", num_classes=12, rate=16_000)
    with pytest.raises(AipError, match="bad log-mel front end"):
        models.build("cnn", num_classes=12, rate=16_000, kwargs={"f_max": 9000.0})
    for width in (0, 2.5, float("nan")):  # a traceback from inside torch before
        with pytest.raises(AipError, match=r"bad kwargs for audio model 'cnn': width must be a positive integer"):
            models.build("cnn", num_classes=12, rate=16_000, kwargs={"width": width})
    with pytest.raises(AipError, match=r"bad kwargs for audio model 'bcresnet': width must be positive"):
        models.build("bcresnet", num_classes=12, rate=16_000, kwargs={"width": float("nan")})


def test_builds_on_the_meta_device():
    with torch.device("meta"):
        m = models.build("bcresnet1", num_classes=10, rate=16_000)
    assert next(m.parameters()).is_meta


@pytest.mark.parametrize("chunk", [1 << 18, 3 * 16_000])
def test_log_mel_front_end_matches_torchaudio(monkeypatch: pytest.MonkeyPatch, chunk: int):
    """The front end takes the STFT power as re^2 + im^2, a chunk of windows at a time on the CPU; it must
    equal torchaudio's MelSpectrogram on every window, whatever the chunking, and pass gradients back."""
    monkeypatch.setattr(models, "CPU_CHUNK_SAMPLES", chunk)  # 3 windows per chunk: 7 windows in 3 chunks
    torch.manual_seed(0)
    front = models.LogMel(rate=16_000, n_mels=40, hop_ms=16.0)
    x = torch.randn(7, 1, 16_000) * 0.1
    ref = (torch.log(front.mel(x) + 1e-6) - models.LOG_MEL_MEAN) / models.LOG_MEL_STD
    out = front(x)
    assert out.shape == ref.shape == (7, 1, 40, 63)  # 16 ms hop: 1 + 16000 // 256 frames
    assert torch.allclose(out, ref, atol=1e-4)
    assert out.is_contiguous()  # what the network's first convolution reads fastest
    assert torch.equal(front(x.view(7, 16_000)), out.view(7, 40, 63))  # any leading shape
    wave = x.clone().requires_grad_()
    front(wave).sum().backward()  # feature visualisation optimises waveforms through the front end
    assert wave.grad is not None and torch.isfinite(wave.grad).all() and wave.grad.abs().sum() > 0


@pytest.mark.parametrize("channels_last", [False, True])
def test_cnn_eval_mode_runs_fused_and_equals_the_plain_layers(channels_last: bool):
    """In eval mode the cnn folds BatchNorm into its convolutions and pools before the affine map and ReLU;
    with BatchNorm scales of both signs it must give the logits of the plain layer-by-layer network."""
    torch.manual_seed(0)
    m = models.build("cnn", num_classes=12, rate=16_000, kwargs={"width": 8, "n_mels": 40})
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    for bn in bns:
        bn.weight.data.normal_()
        bn.bias.data.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    assert all((bn.weight < 0).any() and (bn.weight > 0).any() for bn in bns)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    m.eval()
    x = torch.randn(4, 1, 16_000) * 0.1
    with torch.no_grad():
        plain = torch.nn.Sequential(*m.net)(m.front(x))  # layer by layer, BatchNorm with running statistics
        fused = m(x)
    assert torch.allclose(fused, plain, atol=1e-4), (fused - plain).abs().max()
    m.train()
    assert m(x).shape == (4, 12)  # training mode is the ordinary Sequential (batch statistics)
    keys = {k for k in m.state_dict() if k.startswith("net.")}  # the plain Sequential's: old checkpoints load
    assert keys == {f"net.{k}" for k in torch.nn.Sequential(*m.net).state_dict()} and "net.1.running_var" in keys



def test_exported_front_end_keeps_its_batch_size_free():
    """Traced for export, the front end runs in one piece: the exported program takes any batch size, here one
    larger than a CPU chunk, and gives the eager numbers."""
    front = models.LogMel(rate=16_000, n_mels=40, hop_ms=16.0)
    small, large = torch.randn(2, 1, 16_000), torch.randn(20, 1, 16_000)  # 20 windows: two CPU chunks
    assert large.numel() > models.CPU_CHUNK_SAMPLES
    program = torch.export.export(front, (small,), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    assert torch.allclose(program.module()(large), front(large), atol=1e-4)
