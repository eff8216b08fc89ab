"""The coverage and student-aware view-selection policies (aip.select): what each keeps and drops on hand-made
logits, the adversarial move's budget, that scoring leaves the student untouched, and resume exactness."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aip.hardware import Policy
from aip.select import (
    adversarial_views,
    balanced_indices,
    coverage_indices,
    learnability_indices,
    learnability_scores,
    select_indices,
)
from aip.step import SelectTimer, labelled_views

CPU = torch.device("cpu")


def corners() -> torch.Tensor:
    """10 views sure of class 0, 10 of class 1, 2 of class 2, and one split between classes 0 and 1 (row 22)."""
    return torch.tensor([[9.0, 0, 0]] * 10 + [[0, 9.0, 0]] * 10 + [[0, 0, 9.0]] * 2 + [[4.0, 4.0, -9.0]])


def group(i: int) -> int:
    return 0 if i < 10 else 1 if i < 20 else 2 if i < 22 else 3


@pytest.mark.parametrize("seed", range(5))
def test_coverage_takes_one_view_per_corner_then_the_split_view(seed: int) -> None:
    torch.manual_seed(seed)  # the first view is random; the cover is the same whichever it is
    logits = corners()
    three = coverage_indices(logits, 3).tolist()
    assert len({group(i) for i in three}) == 3  # three different groups, whichever view came first
    four = coverage_indices(logits, 4).tolist()
    assert sorted(group(i) for i in four) == [0, 1, 2, 3]  # never two views of one corner while another is far
    # the teacher-only default instead takes the most typical views of each class: two of one corner
    assert sorted(group(i) for i in balanced_indices(logits, 4).tolist()) != [0, 1, 2, 3]


def test_coverage_of_identical_views_keeps_distinct_rows() -> None:
    idx = coverage_indices(torch.zeros(6, 3), 6)
    assert sorted(idx.tolist()) == list(range(6))


def test_learnability_keeps_sure_teacher_wrong_student() -> None:
    teacher = torch.tensor([[8.0, 0, 0], [8.0, 0, 0], [0.1, 0, 0], [0, 0, 8.0]])
    student = torch.tensor([[0, 8.0, 0], [8.0, 0, 0], [0, 8.0, 0], [0, 8.0, 0]])
    # row 0 and 3: teacher sure, student wrong (kept); row 1: the student agrees; row 2: the teacher is unsure
    assert sorted(learnability_indices(teacher, student, 2, temperature=1.0).tolist()) == [0, 3]
    scores = learnability_scores(teacher, student, temperature=1.0)
    assert scores[1] == pytest.approx(0.0, abs=1e-6) and scores[2] < scores[0] / 4
    # the confidence factor decides: row 0 has the larger KL, but its teacher is unsure; row 1 is kept
    t2, s2 = torch.tensor([[1.5, 0, 0], [9.0, 0, 0]]), torch.tensor([[0, 0, 9.0], [0, 5.0, 0]])
    assert kl(t2[:1], s2[:1]) > kl(t2[1:], s2[1:])
    assert learnability_indices(t2, s2, 1, temperature=1.0).tolist() == [1]
    with pytest.raises(ValueError, match="student's logits"):
        select_indices("learnability", teacher, 2)
    with pytest.raises(ValueError, match="do not match"):
        learnability_indices(teacher, student[:, :2], 2, temperature=1.0)


class Lin(nn.Module):
    """A linear classifier over inputs of any shape (flattened), with a BatchNorm in front to check modes."""

    def __init__(self, features: int, classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.norm = nn.BatchNorm1d(features)
        self.fc = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x.flatten(1)))


def kl(t: torch.Tensor, s: torch.Tensor) -> float:
    lt, ls = t.log_softmax(-1), s.log_softmax(-1)
    return float((lt.exp() * (lt - ls)).sum(-1).mean())


@pytest.mark.parametrize("shape", [(8, 1, 4, 4), (8, 3, 2, 4, 4), (8, 40)])  # image, video, audio-like
def test_adversarial_views_raise_the_kl_inside_the_budget(shape: tuple[int, ...]) -> None:
    torch.manual_seed(1)
    x = torch.randn(shape)
    features = x[0].numel()
    teacher, student = Lin(features, seed=1).eval(), Lin(features, seed=2).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    moved = adversarial_views(x, teacher=teacher, student=student, temperature=1.0, eps=0.1, steps=3)
    assert moved.shape == x.shape and not moved.requires_grad
    radius = 0.1 * float(x.std())
    assert float((moved - x).abs().max()) <= radius * (1 + 1e-5)
    assert float((moved - x).abs().max()) > radius / 2  # it moved
    with torch.no_grad():
        assert kl(teacher(moved), student(moved)) > kl(teacher(x), student(x))
    assert all(p.grad is None for p in student.parameters())  # only the input's gradient was taken
    assert torch.equal(adversarial_views(x, teacher=teacher, student=student, temperature=1.0, eps=0.1, steps=0), x)


def test_labelled_views_learnability_scores_in_eval_mode_and_leaves_the_student_as_it_was() -> None:
    views = torch.arange(8, dtype=torch.float32)[:, None].repeat(1, 2)  # view i is (i, i)
    t_table = torch.tensor([[9.0, 0.0]] * 8)  # the teacher is sure of class 0 everywhere

    class T(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return t_table[x[:, 0].long()]

    student = Lin(2, classes=2)
    with torch.no_grad():  # the student says class 1 for large views, class 0 for small ones
        student.fc.weight.copy_(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))
        student.fc.bias.zero_()
        student.norm.running_mean.fill_(3.5)
        student.norm.running_var.fill_(6.0)
    student.train()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    timer = SelectTimer()
    (x, t), = labelled_views(data=lambda: views, teacher=T(), count=1, batch_size=2, view_pool=4,
                             policy=Policy(device=CPU), select="learnability", student=student, temperature=1.0,
                             timer=timer)
    assert sorted(x[:, 0].tolist()) == [6.0, 7.0]  # where the student disagrees most with the sure teacher
    assert student.training  # back in train mode
    for k, v in student.state_dict().items():
        assert torch.equal(v, before[k]), k  # BatchNorm's running statistics did not move
    assert timer.seconds > 0
    with pytest.raises(ValueError, match="needs the student"):
        next(labelled_views(data=lambda: views, teacher=T(), count=1, batch_size=2, view_pool=4,
                            policy=Policy(device=CPU), select="learnability"))


def test_labelled_views_adversarial_has_the_teacher_label_the_moved_views() -> None:
    torch.manual_seed(0)
    teacher, student = Lin(6, seed=3).eval(), Lin(6, seed=4).train()
    for p in teacher.parameters():
        p.requires_grad_(False)
    pool = torch.randn(16, 6)
    for view_pool in (1, 2):  # the move also applies without a pool
        data = pool[: 8 * view_pool].clone()
        (x, t), = labelled_views(data=lambda d=data: d, teacher=teacher, count=1, batch_size=8, view_pool=view_pool,
                                 policy=Policy(device=CPU), select="adversarial", student=student, temperature=2.0,
                                 adversarial_eps=0.1, adversarial_steps=2)
        assert x.shape == (8, 6)
        assert not any(torch.equal(row, p) for row in x for p in data)  # every kept view moved
        with torch.no_grad():
            assert torch.equal(t, teacher(x))  # the teacher labels what the student sees
        assert student.training


@pytest.mark.slow
@pytest.mark.parametrize("select", ["coverage", "learnability", "adversarial"])
def test_interrupted_run_with_a_new_policy_resumes_to_the_same_weights(tiny_recipe, tmp_path, select: str) -> None:
    from aip import checkpoint
    from aip import recipe as R
    from aip.run import run, train_teacher

    recipe = R.load(tiny_recipe, [f"train.view_select={select!r}", "train.epochs=2", "train.samples_per_epoch=256",
                                  "train.grad_accum=2", "train.batch_size=32"])
    train_teacher(recipe, device=CPU)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run(recipe, out=straight, device=CPU)
    partial = run(recipe, out=resumed, device=CPU, stop_after_epochs=1)
    assert not partial["finished"]
    assert run(recipe, out=resumed, device=CPU)["finished"]
    a, b = checkpoint.load(straight / "last.pt"), checkpoint.load(resumed / "last.pt")
    for k, v in a["student"].items():
        assert torch.equal(v, b["student"][k]), k
    import json

    rows = [json.loads(line) for line in (straight / "steps.jsonl").read_text().splitlines()]
    assert any("select_share" in r for r in rows)  # the selection's cost is in the step log
