"""CutMix in the core (aip.mixing): boxes over the trailing axes, drawn on the device, capturable."""

import pytest
import torch

from aip import graphs
from aip.mixing import box_mask, cutmix


def test_a_box_inside_covers_exactly_one_minus_lambda():
    lam = torch.tensor([0.0, 0.25, 0.5, 0.9, 1.0])
    torch.manual_seed(0)
    for shape in [(1000,), (200, 300)]:
        box = box_mask(lam, shape, inside=True)
        assert box.shape == (5, *shape)
        area = box.flatten(1).float().mean(1)
        torch.testing.assert_close(area, 1 - lam, atol=0.02, rtol=0)


def test_a_clipped_box_covers_at_most_one_minus_lambda_and_is_one_rectangle():
    torch.manual_seed(0)
    lam = torch.rand(200)
    box = box_mask(lam, (40, 60), inside=False)
    area = box.flatten(1).float().mean(1)
    assert (area <= 1 - lam + 0.06).all()  # the box's side is rounded to whole pixels
    assert area.mean() < (1 - lam).mean() - 0.05  # clipped at the edges, on average less
    rows, cols = box.any(2), box.any(1)  # a rectangle: its pixels are the product of its rows and columns
    assert torch.equal(box, rows[:, :, None] & cols[:, None, :])


def test_area_fraction_matches_one_minus_lambda_on_average():
    torch.manual_seed(0)
    x = torch.arange(400.0)[:, None].expand(400, 500).contiguous()  # each window holds its own index
    y = cutmix(x, alpha=1.0, dims=1, inside=True)
    pasted = (y != x).float().mean()
    assert abs(pasted.item() - 0.5) < 0.04  # E[1 - lambda] = 1/2 for Beta(1, 1); a partner may be itself


def test_each_sample_gets_one_partner_box():
    torch.manual_seed(0)
    x = torch.arange(8.0)[:, None, None, None].expand(8, 3, 16, 16).contiguous()
    y = cutmix(x, alpha=1.0, dims=2)
    for i in range(8):
        values = set(y[i].unique().tolist())
        assert len(values) <= 2 and (float(i) in values or len(values) == 1)
        assert torch.equal(y[i, 0], y[i, 1]) and torch.equal(y[i, 0], y[i, 2])  # one box on every channel
    assert not torch.equal(x, y)
    assert torch.equal(x[:, 0, 0, 0], torch.arange(8.0))  # the input is untouched


def test_box_is_shared_over_frames():
    torch.manual_seed(0)
    clips = torch.rand(6, 3, 5, 12, 12)
    out = cutmix(clips, alpha=1.0, dims=2)
    changed = (out != clips).any(1)  # (B, T, H, W)
    assert changed.any()
    assert torch.equal(changed, changed[:, :1].expand_as(changed))


def test_p_zero_and_alpha_zero_are_the_identity():
    x = torch.rand(8, 1, 100)
    assert cutmix(x, alpha=1.0, p=0.0, dims=1) is x
    assert cutmix(x, alpha=0.0, dims=1) is x


def test_p_is_the_share_of_samples_with_a_box():
    torch.manual_seed(0)
    x = torch.arange(2000.0)[:, None].expand(2000, 64).contiguous()
    y = cutmix(x, alpha=1.0, p=0.3, dims=1, inside=True)
    share = (y != x).any(1).float().mean().item()
    assert abs(share - 0.3) < 0.04  # a few boxes are empty (lambda near 1) or come from the sample itself


def test_dims_must_leave_the_batch_axis():
    with pytest.raises(ValueError, match="trailing axes"):
        cutmix(torch.rand(4, 10), alpha=1.0, dims=2)


@pytest.mark.parametrize("inside", [False, True])
def test_cutmix_is_capturable(inside):
    with graphs.forbid_host_reads():
        out = cutmix(torch.rand(4, 3, 2, 8, 8), alpha=1.0, p=0.5, dims=2, inside=inside)
    assert out.shape == (4, 3, 2, 8, 8)
