"""aip.distil: a notebook user runs a recipe and gets (student, metrics), inspection included."""

import json

import pytest
import torch

import aip
from aip import checkpoint
from aip.recipe import load

FAST = ["train.epochs=1", "train.samples_per_epoch=256", "teacher.fit.epochs=1", "train.view_pool=1"]


def test_distil_returns_the_final_student_and_metrics(tiny_recipe, tmp_path):
    student, metrics = aip.distil(str(tiny_recipe), overrides=FAST, device="cpu", out=tmp_path / "run")
    assert isinstance(student, aip.Student) and not student.training
    assert student.device == torch.device("cpu")
    assert student.classes == ["cool_h", "cool_v", "warm_h", "warm_v"] == metrics["classes"]
    assert metrics["steps"] == 4 and metrics["finished"]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["per_class"] == metrics["per_class"] and set(saved["per_class"]) == set(student.classes)
    assert 0 <= saved["agreement"]["top1"] <= 100 and (tmp_path / "run" / saved["confusion_png"]).is_file()
    # the returned student is the final one, whose accuracy metrics.json reports
    final = checkpoint.load(tmp_path / "run" / "last.pt")["student"]
    for k, v in student.net.state_dict().items():
        torch.testing.assert_close(v, final[k])
    # a Recipe object with overrides (the teacher is cached by now)
    recipe = load(tiny_recipe)
    _, metrics = aip.distil(recipe, overrides=FAST + ["train.batch_size=32"], device="cpu", out=tmp_path / "r")
    assert metrics["steps"] == 8  # 256 views in batches of 32
    with pytest.raises(aip.AipError, match="unknown device"):
        aip.distil(recipe, device="tpu", out=tmp_path / "x")
