"""Learning-rate schedules and optimisers named in recipes."""

import pytest
import torch

from aip.optim import lr_factor, make_optimizer, make_scheduler


def test_cosine_with_warmup():
    f = [lr_factor(s, total=100, schedule="cosine", warmup=10) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0)
    assert f[55] == pytest.approx(0.5, abs=0.02)
    assert f[99] < 0.01
    assert all(a >= b for a, b in zip(f[10:], f[11:]))


def test_step_and_constant():
    factors = [lr_factor(s, total=30, schedule="step", milestones=(10, 20), gamma=0.5) for s in (0, 10, 25)]
    assert factors == [1, 0.5, 0.25]
    assert lr_factor(7, total=30, schedule="constant") == 1.0


def test_onecycle_rises_then_falls():
    f = [lr_factor(s, total=100, schedule="onecycle") for s in range(100)]
    assert f[0] == pytest.approx(1 / 25)
    assert max(f) == pytest.approx(1.0, abs=1e-3) and f.index(max(f)) == 30
    assert f[-1] < 1e-3


def test_scheduler_drives_optimizer_lr():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = make_optimizer([p], name="sgd", lr=0.1, weight_decay=0.0)
    sched = make_scheduler(opt, total=10, schedule="step", milestones=(5,), gamma=0.1)
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
    assert isinstance(make_optimizer([p], name="adamw", lr=1e-3, weight_decay=0.1), torch.optim.AdamW)
