"""AugMix's table of operations (modalities.video.augmix): what each operation does, its identity value, and
how often and how far the values of a chain are drawn."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from modalities.video import augmix as A


@pytest.mark.parametrize("op", A.PIXELS, ids=lambda op: op.name)
def test_pixel_operation_at_its_identity_value_returns_the_clips(op):
    torch.manual_seed(0)
    x = torch.rand(3, 3, 2, 12, 12)
    out = op.fn(x, torch.full((3,), op.identity))
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


@pytest.mark.parametrize("op", A.GEOMETRY, ids=lambda op: op.name)
def test_geometric_operation_at_its_identity_value_is_the_identity_map(op):
    assert torch.equal(op.fn(torch.full((2,), op.identity)), torch.eye(3).expand(2, 3, 3))


def test_no_operation_drawn_leaves_the_clips_as_they_are():
    x = torch.rand(4, 3, 2, 16, 16)
    torch.manual_seed(0)
    torch.testing.assert_close(A.AugMix(width=3, severity=5, depth=0)(x), x, atol=1e-5, rtol=0)


def test_solarize_inverts_values_at_or_above_the_threshold():
    x = torch.tensor([0.2, 0.5, 0.7, 0.9]).view(1, 1, 1, 1, 4)
    out = A.solarize(x, torch.tensor([0.6]))
    torch.testing.assert_close(out.flatten(), torch.tensor([0.2, 0.5, 0.3, 0.1]))


def test_posterize_keeps_that_many_bits():
    x = torch.linspace(0, 1, 101).view(1, 1, 1, 1, -1)
    assert set(A.posterize(x, torch.tensor([1.0])).unique().tolist()) == {0.0, 1.0}
    assert len(A.posterize(x, torch.tensor([2.0])).unique()) == 4


def test_autocontrast_stretches_each_channel_and_keeps_flat_ones():
    x = torch.stack([torch.linspace(0.2, 0.6, 16), torch.full((16,), 0.3), torch.linspace(0.1, 0.9, 16)])
    x = x.view(1, 3, 1, 4, 4)
    out = A.autocontrast(x, torch.tensor([1.0]))
    assert abs(out[:, 0].amin().item()) < 1e-6 and abs(out[:, 0].amax().item() - 1) < 1e-6
    assert torch.equal(out[:, 1], x[:, 1])  # flat: kept


def test_brightness_and_contrast_at_zero():
    x = torch.rand(2, 3, 2, 8, 8)
    assert torch.equal(A.brightness(x, torch.zeros(2)), torch.zeros_like(x))
    grey = (x.mean(dim=(2, 3, 4)) @ torch.tensor(A.LUMA)).view(2, 1, 1, 1, 1)
    torch.testing.assert_close(A.contrast(x, torch.zeros(2)), grey.expand_as(x), atol=1e-6, rtol=0)


def test_sharpness_smooths_with_pils_kernel():
    torch.manual_seed(0)
    clips = torch.rand(4, 3, 2, 16, 16)
    f = torch.tensor([0.1, 0.5, 1.0, 1.9])
    k = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]]).view(1, 1, 3, 3) / 13
    smooth = F.conv2d(F.pad(clips.reshape(-1, 1, 16, 16), (1, 1, 1, 1), mode="replicate"), k).view_as(clips)
    ref = (smooth + f.view(-1, 1, 1, 1, 1) * (clips - smooth)).clamp(0, 1)
    torch.testing.assert_close(A.sharpness(clips, f), ref, atol=1e-5, rtol=0)


def test_geometry_composes_translation_after_rotation_after_shear():
    aug = A.AugMix(width=1, severity=10, depth=0)
    values = aug.identity[:, None].clone()  # (ops, 1 clip): every operation off
    names = [op.name for op in A.OPS]
    values[names.index("translate_x"), 0] = 0.5
    values[names.index("rotate"), 0] = math.pi / 2
    x = torch.zeros(1, 3, 1, 8, 8)
    x[..., 0, 0] = 1.0  # the top-left pixel
    out = aug.chain(x, values)[:, :1]
    # output (u, v) reads input R(90 degrees) (u, v) + (0.5, 0) = (-v + 0.5, u)
    theta = torch.tensor([[[0.0, -1.0, 0.5], [1.0, 0.0, 0.0]]])
    ref = F.grid_sample(x[:, :1].reshape(1, 1, 8, 8), F.affine_grid(theta, [1, 1, 8, 8], align_corners=False),
                        align_corners=False)
    torch.testing.assert_close(out.view(1, 1, 8, 8), ref, atol=1e-6, rtol=0)


def test_values_are_drawn_with_probability_p_within_their_magnitude():
    aug = A.AugMix(width=1, severity=5, depth=3)
    torch.manual_seed(0)
    v = aug.values(20_000)  # (ops, n)
    for i, op in enumerate(A.OPS):
        drawn = v[i] != op.identity
        assert abs(drawn.float().mean().item() - aug.p) < 0.015, op.name  # 0.3 within about 4.5 sigma
        lo, hi = sorted((op.start - (op.magnitude * aug.s if op.signed else 0), op.start + op.magnitude * aug.s))
        assert (v[i][drawn] >= lo - 1e-6).all() and (v[i][drawn] <= hi + 1e-6).all(), op.name
    assert aug.p == pytest.approx(3 / len(A.OPS))
