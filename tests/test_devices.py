"""Host-drawn parameters and the masked whole-batch paths the CUDA view generators take (checked on the CPU)."""

from __future__ import annotations

import torch

from aip.devices import HOST, params_device, upload
from modalities.image.augment import Solarize
from modalities.video.augmix import AugMix


def test_parameters_are_drawn_on_the_host_for_cuda_only():
    assert params_device(torch.device("cuda", 0)) == HOST
    assert params_device(torch.device("cpu")) == torch.device("cpu")
    assert params_device(torch.device("meta")) == torch.device("meta")


def test_upload_keeps_a_tensor_already_there_and_moves_others():
    t = torch.arange(6.0)
    assert upload(t, torch.device("cpu")) is t
    moved = upload(t, torch.device("meta"))
    assert moved.device.type == "meta" and moved.shape == t.shape


def test_solarize_on_the_whole_batch_equals_solarize_on_the_picked_views():
    x = torch.rand(64, 3, 8, 8)
    torch.manual_seed(0)
    picked = Solarize(0.5, whole=False)(x)
    torch.manual_seed(0)
    whole = Solarize(0.5, whole=True)(x)
    assert torch.equal(picked, whole)
    changed = (picked != x).flatten(1).any(1)
    assert 10 < int(changed.sum()) < 54  # about half the views, the rest untouched
    assert torch.equal(picked[~changed], x[~changed])


def test_augmix_on_the_whole_batch_equals_augmix_on_the_picked_clips():
    # with depth 9 every operation is drawn for every clip, so both paths draw the same random numbers
    x = torch.rand(6, 3, 2, 16, 16)
    torch.manual_seed(0)
    picked = AugMix(width=2, severity=3, depth=9, whole=False)(x)
    torch.manual_seed(0)
    whole = AugMix(width=2, severity=3, depth=9, whole=True)(x)
    assert torch.allclose(picked, whole, atol=1e-6)
    assert not torch.allclose(picked, x, atol=1e-3)


def test_augmix_on_the_whole_batch_leaves_undrawn_clips_as_they_are():
    """On the whole batch an operation that is not drawn for a clip runs with parameters that make it the
    identity (no mask pass); with no operation drawn at all (depth 0) the clips come out unchanged."""
    x = torch.rand(6, 3, 2, 16, 16)
    torch.manual_seed(0)
    out = AugMix(width=3, severity=5, depth=0, whole=True)(x)
    assert torch.allclose(out, x, atol=1e-5)
    flat = torch.full((2, 3, 2, 8, 8), 0.25)  # a flat clip: autocontrast leaves it alone when drawn too
    torch.manual_seed(0)
    assert torch.allclose(AugMix(width=1, depth=9, whole=True)._whole(
        "autocontrast", flat, torch.rand(2), torch.ones(2, dtype=torch.bool)), flat)
