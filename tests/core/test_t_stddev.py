"""T. stddev (Wang et al., NeurIPS 2022) in ``aip source-stats``: the spread of the teacher's mean prediction over
batches of views, on hand-made probabilities."""

from __future__ import annotations

import math

import pytest
import torch

from aip.source_stats import t_stddev, teacher_measures


def test_t_stddev_is_the_spread_of_batch_means_averaged_over_classes() -> None:
    # two batches of 4 views: the first all class 0, the second all class 1 -> batch means (1, 0) and (0, 1)
    probs = torch.tensor([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 4)
    assert t_stddev(probs, group=4) == pytest.approx(math.sqrt(0.5))  # unbiased std of {0, 1}, both classes
    # the same views interleaved: every batch has the same mean, so no spread
    assert t_stddev(torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 4), group=4) == pytest.approx(0.0)
    # three classes, one of them never predicted: its zero spread is averaged in
    three = torch.tensor([[1.0, 0, 0]] * 2 + [[0, 1.0, 0]] * 2)
    assert t_stddev(three, group=2) == pytest.approx(2 * math.sqrt(0.5) / 3)
    assert math.isnan(t_stddev(probs, group=8))  # one batch has no spread to measure
    partial = torch.cat([probs, probs[:3]])  # a partial last batch is left out
    assert t_stddev(partial, group=4) == pytest.approx(math.sqrt(0.5))


def test_teacher_measures_report_t_stddev() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1024, 10)
    m = teacher_measures(logits)
    assert m["teacher_t_stddev"] == pytest.approx(t_stddev(logits.softmax(-1)))
    assert 0 < m["teacher_t_stddev"] < 0.05  # i.i.d. views: batch means of 64 agree closely
    sure = teacher_measures(torch.cat([torch.full((512, 1), 9.0), torch.zeros(512, 9)], 1))
    assert sure["teacher_t_stddev"] == pytest.approx(0.0, abs=1e-6)
