"""The video modality through the CLI: the shipped recipes keep the paper's settings and check, ``aip preview``
writes a clip grid and a GIF, and bad input ends with one line and exit code 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from aip import recipe as recipe_mod
from aip.errors import AipError
from aip.registry import load_modality
from aip.run import describe_models
from modalities.video.motion import write_video
from tests.conftest import ROOT, motion_recipe, run_cli

VIDEO_RECIPES = ["kinetics400", "ucf101"]


@pytest.mark.parametrize("name", VIDEO_RECIPES)
def test_video_recipes_keep_the_paper_settings_and_their_models_build(name):
    r = recipe_mod.load(ROOT / "recipes" / f"{name}.toml")
    assert r.modality == "video" and r.eval.dataset == name
    assert (r.source.frames, r.source.size, r.source.fps, r.source.pan_frames) == (4, 160, 12.0, 16)
    assert tuple(r.source.scale) == (0.002, 1.0) and r.source.test_clips == 10
    assert (r.teacher.arch, r.student.arch) == ("x3d_xs", "x3d_xs_e")
    assert r.loss.temperature == 5.0 and r.loss.kind == "kl"
    assert (r.train.optimizer, r.train.lr, r.train.schedule, r.train.warmup_epochs) == ("adamw", 1e-3, "cosine", 5)
    assert r.augment.augmix and tuple(r.augment.short_side) == (183, 229) and r.augment.cutmix == 1.0
    modality = load_modality("video")
    k = 400 if name == "kinetics400" else 101
    with torch.device("meta"):
        for spec in (r.student, r.teacher):
            model = modality.model(spec, recipe=r, num_classes=k, pretrained=False)
            assert tuple(model(torch.empty(2, 3, 4, 160, 160)).shape) == (2, k)


def test_video_modality_is_found_with_its_catalog():
    catalog = load_modality("video").catalog()
    assert "x3d_xs_e" in catalog["models"] and "r2plus1d_18" in catalog["models"]
    assert {"kinetics400", "ucf101", "videofolder"} <= set(catalog["datasets"])


def test_preview_writes_a_clip_grid_and_a_gif(tmp_path):
    recipe = motion_recipe(tmp_path, tmp_path / "unused")
    out = tmp_path / "preview"
    result = run_cli("preview", str(recipe), "--out", str(out), "--count", "6")
    assert result.returncode == 0, result.stderr[-1500:]
    png, gif = out / "views.png", out / "views.gif"
    assert png.is_file() and gif.is_file() and (out / "augmented.gif").is_file()
    with Image.open(png) as im:  # 6 rows of 4 frames of 32 px with 2 px padding
        assert im.size == (4 * 34 + 2, 6 * 34 + 2)
    with Image.open(gif) as im:
        assert im.n_frames == 4


def _fails_with(*args: str, match: str, code: int = 2) -> None:
    result = run_cli(*args)
    assert result.returncode == code, result.stderr[-1500:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], result.stderr


def test_bad_input_is_one_line_with_its_exit_code(tmp_path):
    """Through the CLI (a subprocess) for a missing dataset (a failure at run time, exit 1) and an unknown model
    (a usage error, exit 2); the other recipe errors in-process (the CLI prints any AipError as one line, see
    tests/core/test_cli.py)."""
    recipe = motion_recipe(tmp_path, tmp_path / "missing")
    _fails_with("teacher", str(recipe), "--device", "cpu", match="does not exist; expected ROOT/train/CLASS",
               code=1)
    _fails_with("check", str(recipe), "--set", "student.arch=x3d_xz", match="unknown video model 'x3d_xz'")
    for overrides, match in [
        (["student.arch=x3d", "student.kwargs={}", "source.size=16"], "needs clips of at least 32 px"),
        (["source.frames=0"], "source.frames"),
        (["augment.short_side=[20, 30]"], "augment.short_side"),
        (["eval.dataset=hmdb51"], "unknown video dataset 'hmdb51'"),
    ]:
        with pytest.raises(AipError, match=re.escape(match)) as e:
            describe_models(recipe_mod.load(recipe, overrides))  # what `aip check` does
        assert "\n" not in str(e.value)
    empty = tmp_path / "empty"
    (empty / "train" / "a").mkdir(parents=True)
    (empty / "val" / "a").mkdir(parents=True)
    with pytest.raises(AipError, match="no videos"):
        load_modality("video").data(recipe_mod.load(motion_recipe(tmp_path, empty)), split="train", train=True)


def test_a_video_file_source_through_preview(tmp_path):
    frames = torch.randint(0, 255, (12, 40, 40, 3), dtype=torch.uint8).numpy()
    clip = write_video(tmp_path / "one.mp4", frames, fps=12)
    recipe = motion_recipe(tmp_path, tmp_path / "unused")
    result = run_cli("preview", str(recipe), "--out", str(tmp_path / "p"), "--count", "2",
                     "--set", f"source.uri={Path(clip).as_posix()}", "--set", "source.fps=12.0")
    assert result.returncode == 0, result.stderr[-1500:]
    assert (tmp_path / "p" / "views.gif").is_file()
