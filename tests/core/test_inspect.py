"""aip.inspect: per-class accuracy, confusion matrix and teacher-student agreement, and `aip eval` writing them."""

import json
import math

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from aip import files
from aip.inspect import inspect
from aip.recipe import load
from aip.registry import load_modality
from aip.run import evaluate_checkpoint, train_teacher


class Logits(torch.nn.Module):
    """A 'classifier' whose inputs are its logits: the tests choose every prediction."""

    def forward(self, x):
        return x


def test_per_class_accuracy_agreement_and_confusion_png(tmp_path):
    # 3 classes; items are the student's logits, the teacher's are fixed per item below
    student_logits = torch.tensor([[5.0, 0, 0], [0, 5, 0], [5, 0, 0], [0, 0, 5], [0, 5, 0]])
    labels = torch.tensor([0, 1, 1, 2, 2])
    teacher_logits = torch.tensor([[5.0, 0, 0], [0, 5, 0], [0, 5, 0], [0, 0, 5], [0, 0, 5]])

    items = torch.cat([student_logits, torch.arange(5.0)[:, None]], 1)  # the last column: the item's index

    class Student(torch.nn.Module):
        def forward(self, x):
            return x[:, :3]

    class Teacher(torch.nn.Module):
        def forward(self, x):
            return teacher_logits[x[:, 3].long()]

    batches = DataLoader(TensorDataset(items, labels), batch_size=2)
    out = inspect(Student(), batches, classes=["a", "b", "c"], device=torch.device("cpu"), teacher=Teacher(),
                  png=tmp_path / "confusion.png")
    assert out["per_class"] == {"a": {"top1": 100.0, "n": 1}, "b": {"top1": 50.0, "n": 2},
                                "c": {"top1": 50.0, "n": 2}}
    assert out["agreement"]["top1"] == pytest.approx(60.0) and out["agreement"]["n"] == 5
    p, q = torch.tensor([5.0, 0, 0]).softmax(0), torch.tensor([0, 5.0, 0]).softmax(0)
    one = float((p * (p.log() - q.log())).sum())  # KL between a confident and a wrong distribution
    assert out["agreement"]["kl"] == pytest.approx(2 * one / 5, rel=1e-5) and one > 1
    assert out["confusion_png"] == "confusion.png"
    with Image.open(tmp_path / "confusion.png") as img:
        assert img.size[0] > 200


def test_multi_view_items_average_probabilities(tmp_path):
    x = torch.tensor([[[4.0, 0], [0, 1]]])  # one item, two views: the first confident in class 0
    out = inspect(Logits(), DataLoader(TensorDataset(x, torch.tensor([0])), batch_size=1), classes=["a", "b"],
                  device=torch.device("cpu"), views=2, teacher=Logits())
    assert out["per_class"]["a"]["top1"] == 100.0 and out["agreement"]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert "confusion_png" not in out


def test_aip_eval_writes_inspection_into_metrics_json(tiny_recipe, tmp_path):
    recipe = load(tiny_recipe, ["teacher.fit.epochs=1"])
    train_teacher(recipe, device=torch.device("cpu"))
    modality = load_modality("image")
    torch.manual_seed(0)
    student = modality.model(recipe.student, recipe=recipe, num_classes=4, pretrained=False)
    run = tmp_path / "run"
    files.save_torch({"student": student.state_dict(), "recipe": recipe.to_dict()}, run / "best.pt")
    files.write_text(json.dumps({"recipe": "tiny", "steps": 3}), run / "metrics.json")
    acc = evaluate_checkpoint(recipe, run / "best.pt", device=torch.device("cpu"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 3  # what was there is kept
    assert metrics["classes"] == ["cool_h", "cool_v", "warm_h", "warm_v"]
    assert set(metrics["per_class"]) == set(metrics["classes"])
    assert sum(c["n"] for c in metrics["per_class"].values()) == acc["n"]
    mean = sum(c["top1"] * c["n"] for c in metrics["per_class"].values()) / acc["n"]
    assert mean == pytest.approx(acc["top1"])
    assert 0 <= metrics["agreement"]["top1"] <= 100 and math.isfinite(metrics["agreement"]["kl"])
    assert (run / metrics["confusion_png"]).is_file()
