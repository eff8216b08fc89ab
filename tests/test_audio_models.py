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


def test_builds_on_the_meta_device():
    with torch.device("meta"):
        m = models.build("bcresnet1", num_classes=10, rate=16_000)
    assert next(m.parameters()).is_meta
