"""One tiny end-to-end run per modality (image, video, audio) with a student-aware view-selection policy: the
policies work on logits and inputs of any shape, and the run writes its contract with the selection's cost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from aip import recipe as R
from aip.run import run, train_teacher
from tests.conftest import write_toml

CPU = torch.device("cpu")
pytestmark = pytest.mark.slow


def finished_run(recipe: R.Recipe, out: Path) -> tuple[dict, list[dict]]:
    train_teacher(recipe, device=CPU)
    metrics = run(recipe, out=out, device=CPU)
    assert metrics["finished"] and metrics["steps"] == recipe.train.total_steps, metrics
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    shares = [r["select_share"] for r in steps if "select_share" in r]
    assert shares and all(0 < s < 1 for s in shares)  # the selection's time is counted, and not free
    return json.loads((out / "metrics.json").read_text()), steps


def test_image_run_with_adversarial_views_learns(tiny_recipe, tmp_path):
    recipe = R.load(tiny_recipe, ["train.view_select='adversarial'", "train.epochs=3"])
    metrics, _ = finished_run(recipe, tmp_path / "run")
    assert metrics["student"]["top1"] > 50.0, metrics  # chance is 25 %; measured 90 % (seed 0)


def test_video_run_with_learnability(tmp_path):
    from tests.conftest import motion_recipe, write_motion_folder

    path = motion_recipe(tmp_path, write_motion_folder(tmp_path / "motion"), epochs=2)
    recipe = R.load(path, ["train.view_select='learnability'", "train.view_pool=2", "train.samples_per_epoch=256",
                           "eval.every_epochs=1"])
    metrics, _ = finished_run(recipe, tmp_path / "run")
    assert 0 <= metrics["student"]["top1"] <= 100 and metrics["chance"] == 25.0


@pytest.mark.parametrize("select", ["learnability", "adversarial"])
def test_audio_run_with_a_student_aware_policy(tmp_path, select: str):
    from modalities.audio.datasets import KEYWORDS
    from tests.conftest import distil, write_speechcommands

    root = write_speechcommands(tmp_path / "sc", KEYWORDS)
    path = write_toml(tmp_path / "audio.toml", {
        "modality": "audio", "name": "tiny-audio", "source": {"uri": "synthetic:noise"}, "augment": {},
        **distil("cnn", fit={"epochs": 2, "batch_size": 32}, temperature=4.0,
                 train={"epochs": 1, "samples_per_epoch": 256, "lr": 5e-3, "view_pool": 2, "log_every": 2,
                        "view_select": select}),
        "eval": {"dataset": "speechcommands", "root": root.as_posix(), "download": False},
    })
    metrics, _ = finished_run(R.load(path), tmp_path / "run")
    assert 0 <= metrics["student"]["top1"] <= 100
