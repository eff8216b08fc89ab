"""Distillation losses against values computed by hand."""

import math

import pytest
import torch

from aip.loss import distillation_loss, kd_argmax, kd_kl


def test_kl_matches_hand_computed_value():
    s = torch.tensor([[1.0, 0.0]])
    t = torch.tensor([[0.0, 1.0]])
    T = 2.0
    ps = [math.exp(0.5) / (math.exp(0.5) + 1), 1 / (math.exp(0.5) + 1)]
    pt = [1 / (1 + math.exp(0.5)), math.exp(0.5) / (1 + math.exp(0.5))]
    expected = sum(p * math.log(p / q) for p, q in zip(pt, ps))
    assert kd_kl(s, t, temperature=T).item() == pytest.approx(expected, rel=1e-6)
    assert kd_kl(s, t, temperature=T, t2_scale=True).item() == pytest.approx(expected * T * T, rel=1e-6)


def test_kl_is_batch_mean_and_zero_for_equal_logits():
    s = torch.randn(4, 7)
    assert kd_kl(s, s.clone(), temperature=8).item() == pytest.approx(0.0, abs=1e-6)
    t = torch.randn(4, 7)
    per_row = [kd_kl(s[i : i + 1], t[i : i + 1], temperature=3).item() for i in range(4)]
    assert kd_kl(s, t, temperature=3).item() == pytest.approx(sum(per_row) / 4, rel=1e-5)


def test_kl_gradient_pulls_student_towards_teacher():
    s = torch.zeros(1, 3, requires_grad=True)
    t = torch.tensor([[5.0, 0.0, 0.0]])
    kd_kl(s, t, temperature=1).backward()
    assert s.grad[0, 0] < 0 < s.grad[0, 1]  # gradient descent raises the teacher's top class


def test_argmax_is_cross_entropy_with_teacher_label():
    s = torch.tensor([[2.0, 1.0, 0.0]])
    t = torch.tensor([[0.0, 0.0, 9.0]])
    expected = -math.log(math.exp(0.0) / (math.exp(2.0) + math.exp(1.0) + 1.0))
    assert kd_argmax(s, t).item() == pytest.approx(expected, rel=1e-6)
    assert distillation_loss(s, t, kind="argmax", temperature=8).item() == pytest.approx(expected, rel=1e-6)


def test_unknown_kind_raises():
    with pytest.raises(ValueError):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), kind="mse", temperature=1)


def test_balanced_selection_gives_every_class_its_share():
    from aip.select import balanced_indices

    torch.manual_seed(0)
    # a pool where class 0 dominates: 90 % of views are "class 0", few look like class 2
    logits = torch.randn(400, 3)
    logits[:360, 0] += 5
    idx = balanced_indices(logits, 30)
    assert len(idx) == 30 and len(set(idx.tolist())) == 30
    counts = torch.bincount(logits[idx].argmax(-1), minlength=3)
    assert counts.min() >= 8  # about 10 per class instead of 27/3/0
    with pytest.raises(ValueError):
        balanced_indices(logits[:10], 30)
