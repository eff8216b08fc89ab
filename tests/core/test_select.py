"""View-selection policies (aip.select) on hand-made teacher logits."""

from __future__ import annotations

import pytest
import torch

from aip.select import POLICIES, balanced_indices, boundary_indices, entropy_indices, random_indices, select_indices


def test_entropy_keeps_the_least_confident_views() -> None:
    confident = torch.tensor([[10.0, 0.0, 0.0]]).repeat(6, 1)
    unsure = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [2.0, 1.0, 1.0]])
    logits = torch.cat([confident[:3], unsure, confident[3:]])  # the unsure views are rows 3, 4, 5
    idx = entropy_indices(logits, 3)
    assert sorted(idx.tolist()) == [3, 4, 5]
    assert idx[0].item() == 3  # the uniform row has the highest entropy


def test_balanced_spreads_over_classes() -> None:
    # 8 views the teacher calls class 0, 2 it calls class 1: a balanced 4 takes both class-1 views
    logits = torch.cat([torch.tensor([[5.0, 0.0]]).repeat(8, 1), torch.tensor([[0.0, 5.0]]).repeat(2, 1)])
    idx = balanced_indices(logits, 4)
    assert len(set(idx.tolist())) == 4
    assert (logits[idx].argmax(-1) == 1).sum().item() == 2


def test_boundary_takes_split_views_per_class() -> None:
    # class 0: rows 0-2 clearly 0, row 3 split 0/1; class 1: rows 4-6 clearly 1, row 7 split 1/2;
    # class 2: rows 8-9 clearly 2. Two per class: each class takes its split view first, then a clear one
    logits = torch.tensor([[6.0, 0.0, 0.0]] * 3 + [[2.0, 2.0, -4.0]] + [[0.0, 6.0, 0.0]] * 3
                          + [[-4.0, 2.0, 2.1]] + [[0.0, 0.0, 6.0]] * 2)
    torch.manual_seed(0)
    idx = boundary_indices(logits, 6).tolist()
    assert len(set(idx)) == 6 and 3 in idx and 7 in idx
    typical = balanced_indices(logits, 3).tolist()  # one each: the most typical views, never the split ones
    assert 3 not in typical and 7 not in typical
    assert (logits[idx].argmax(-1).bincount(minlength=3) >= 1).all()  # still every class represented


def test_random_is_a_uniform_subset_of_distinct_rows() -> None:
    logits = torch.zeros(20, 3)
    torch.manual_seed(0)
    counts = torch.zeros(20)
    for _ in range(400):
        idx = random_indices(logits, 5)
        assert len(set(idx.tolist())) == 5
        counts[idx] += 1
    assert counts.min() > 50 and counts.max() < 150  # 100 expected per row


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_by_name(policy: str) -> None:
    logits = torch.randn(12, 4)
    student = torch.randn(12, 4)  # what the student-aware policies also read
    idx = select_indices(policy, logits, 6, student_logits=student)
    assert idx.shape == (6,) and len(set(idx.tolist())) == 6
    with pytest.raises(ValueError, match="pool of 4"):
        select_indices(policy, logits[:4], 6, student_logits=student[:4])


def test_unknown_policy_and_recipe_key(tiny_recipe) -> None:
    from aip import recipe as recipe_mod
    from aip.errors import RecipeError

    with pytest.raises(ValueError, match="unknown view selection"):
        select_indices("confidence", torch.zeros(4, 2), 2)
    assert recipe_mod.load(tiny_recipe, ["train.view_select=entropy"]).train.view_select == "entropy"
    with pytest.raises(RecipeError, match="view_select"):
        recipe_mod.load(tiny_recipe, ["train.view_select=confidence"])


def test_labelled_views_uses_the_recipe_policy() -> None:
    from aip.hardware import Policy
    from aip.step import labelled_views

    views = torch.arange(8, dtype=torch.float32)[:, None]  # view i is the number i
    # teacher "logits": rows 5 and 6 are uniform (max entropy), the others confident
    logits = torch.tensor([[9.0, 0.0]] * 5 + [[0.0, 0.0]] * 2 + [[9.0, 0.0]])

    class T(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return logits[x[:, 0].long()]

    policy = Policy(device=torch.device("cpu"))
    (x, t), = labelled_views(data=lambda: views, teacher=T(), count=1, batch_size=2, view_pool=4,
                             policy=policy, select="entropy")
    assert sorted(x[:, 0].tolist()) == [5.0, 6.0]
