"""Gradient accumulation equals one big batch; multi-view evaluation averages softmax over an item's views."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

from aip import recipe as R
from aip.evaluate import evaluate, loader, scores
from aip.modality import LabelledData
from aip.trainer import fit

CPU = torch.device("cpu")


class QueueSampler:
    """Hands out the rows of a fixed tensor in order, however they are asked for (so batch splits agree)."""

    def __init__(self, data: torch.Tensor) -> None:
        self.data, self.pos = data, 0

    def sample(self, n: int) -> torch.Tensor:
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out


def distil(tiny_recipe, tmp_path, overrides: list[str]) -> tuple[nn.Module, int]:
    recipe = R.load(tiny_recipe, ["train.view_pool=1", "train.epochs=2", "train.samples_per_epoch=256",
                                  "train.schedule='constant'", "train.optimizer='sgd'", *overrides])
    tmp_path.mkdir(parents=True)
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    student = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))  # no BatchNorm: micro-batches are exact halves
    data = torch.randn(4096, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    result = fit(recipe=recipe, student=student, teacher=teacher, sampler=QueueSampler(data), augmenter=lambda v: v,
                 evaluate=lambda m: {"top1": 0.0, "top5": 0.0}, run_dir=tmp_path, device=CPU)
    return student, result.step


def test_two_accumulated_half_batches_make_the_same_step_as_one_batch(tiny_recipe, tmp_path):
    big, big_steps = distil(tiny_recipe, tmp_path / "a", ["train.batch_size=64"])
    acc, acc_steps = distil(tiny_recipe, tmp_path / "b", ["train.batch_size=32", "train.grad_accum=2"])
    assert big_steps == acc_steps == 2 * 256 // 64  # an epoch is samples_per_epoch views, whatever the split
    for p, q in zip(big.parameters(), acc.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    plain, plain_steps = distil(tiny_recipe, tmp_path / "c", ["train.batch_size=32"])
    assert plain_steps == 2 * big_steps
    assert not torch.allclose(plain[1].weight, big[1].weight)  # the comparison above can fail


def test_effective_batch_and_lr_scaling(tiny_recipe):
    r = R.load(tiny_recipe, ["train.batch_size=32", "train.grad_accum=4", "train.lr_scaling='sqrt'"])
    assert r.train.effective_batch(8) == 32 * 4 * 8
    assert r.train.steps_per_epoch_at(8) == -(-1024 // (32 * 4 * 8))
    assert r.train.lr_at(4) == r.train.lr * 2
    assert R.load(tiny_recipe, ["train.lr_scaling='linear'"]).train.lr_at(4) == r.train.lr * 4


class Probe(nn.Module):
    """Logits read off the input: item view v of example b is the 3 numbers stored in it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def test_multi_view_items_average_softmax_and_middle_view_validation():
    # two items with 3 views each, 3 classes; item 0's views disagree, the average decides
    x = torch.tensor([
        [[5.0, 0, 0], [0, 1.0, 0], [0, 1.0, 0]],   # softmax mean favours class 0 (one confident view)
        [[0, 0, 2.0], [0, 3.0, 0], [0, 0, 2.0]],   # middle view says 1, the mean says 2
    ])
    y = torch.tensor([0, 2])
    probs = scores(Probe(), x, views=3)
    expected = x.softmax(-1).mean(1)
    torch.testing.assert_close(probs, expected)
    assert probs.argmax(-1).tolist() == [0, 2]
    assert scores(Probe(), x, views=3, middle_only=True).argmax(-1).tolist() == [1, 1]
    data = LabelledData(TensorDataset(x, y), num_classes=3, views=3)
    batches = loader(data, batch_size=2)
    assert evaluate(Probe(), batches, device=CPU, views=3)["top1"] == 100.0
    assert evaluate(Probe(), batches, device=CPU, views=3, middle_only=True)["top1"] == 0.0


def test_channels_last_skips_models_with_3d_convolutions():
    from aip.hardware import Policy

    policy = Policy(CPU, memory_format=torch.channels_last)
    video = policy.place(nn.Sequential(nn.Conv3d(3, 4, 3), nn.Flatten()))  # would raise "required rank 4 tensor"
    assert video[0].weight.is_contiguous()
    image = policy.place(nn.Conv2d(3, 4, 3))
    assert image.weight.is_contiguous(memory_format=torch.channels_last) and not image.weight.is_contiguous()


def test_channels_last_on_puts_video_in_channels_last_3d():
    from aip.hardware import Policy

    policy = Policy(CPU, memory_format=torch.channels_last, channels_last_3d=True)
    video = policy.place(nn.Conv3d(3, 4, 3))
    assert video.weight.is_contiguous(memory_format=torch.channels_last_3d) and not video.weight.is_contiguous()
    clip = policy.batch(torch.rand(2, 3, 4, 8, 8))
    assert clip.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.allclose(video(clip), nn.functional.conv3d(clip.contiguous(), video.weight, video.bias), atol=1e-5)


def test_teacher_labels_a_view_pool_one_batch_at_a_time_on_the_cpu():
    from aip.hardware import Policy
    from aip.step import teacher_logits

    seen: list[int] = []

    class Teacher(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(3)).eval()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.shape[0])
            return self.net(x)

    teacher = Teacher()
    x = torch.randn(10, 1, 6, 6)
    whole = teacher(x)
    seen.clear()
    chunked = teacher_logits(teacher, x, chunk=4, policy=Policy(CPU))
    assert seen == [4, 4, 2]
    torch.testing.assert_close(chunked, whole)
    assert not chunked.requires_grad
    seen.clear()
    teacher_logits(teacher, x, chunk=16, policy=Policy(CPU))
    assert seen == [10]
