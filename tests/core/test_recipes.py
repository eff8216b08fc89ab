"""The shipped recipes: every ``recipes/*.toml`` validates, ``aip check`` prints it as TOML that loads back to
the same recipe, its models exist, and the paper's image recipes keep the paper's settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
import torch
from typer.testing import CliRunner

from aip import recipe as recipe_mod
from aip.cli import app
from aip.registry import load_modality
from modalities.image import datasets
from tests.conftest import ROOT, run_cli

RECIPES = sorted((ROOT / "recipes").glob("*.toml"))
IDS = [p.stem for p in RECIPES]

#: the recipes that reproduce the paper's image experiments (docs/recipes.md), with their view size
PAPER = {
    "cifar10": 32, "cifar100": 32, "imagenet": 224, "imagenet-r50x2": 224, "stl10": 224, "pets": 224,
    "flowers102": 224, "places365": 224, "imagenet100": 224,
}


def _check_stdout(path: Path, *overrides: str) -> str:
    args = ["check", str(path)]
    for o in overrides:
        args += ["--set", o]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_recipes_are_found():
    assert "fashion-mnist" in IDS
    assert set(PAPER) <= set(IDS), sorted(set(PAPER) - set(IDS))


@pytest.mark.parametrize("path", RECIPES, ids=IDS)
def test_recipe_validates(path: Path):
    r = recipe_mod.load(path)
    assert r.name and r.description, "a shipped recipe names and describes itself"
    assert path.read_text().startswith("#"), "a shipped recipe starts with a header comment"


@pytest.mark.parametrize("path", RECIPES, ids=IDS)
def test_check_prints_toml_that_round_trips(path: Path):
    original = recipe_mod.load(path).to_dict()
    printed = tomllib.loads(_check_stdout(path))
    assert printed == original
    assert recipe_mod.from_dict(printed, default_name=path.stem).to_dict() == original


@pytest.mark.parametrize("path", RECIPES, ids=IDS)
def test_models_exist(path: Path):
    """``aip check`` does not build models; build teacher and student here, on the meta device (no memory, no
    weights downloaded), so a misspelt architecture fails in the tests instead of at run time."""
    r = recipe_mod.load(path)
    if r.modality != "image":  # video and audio models run a forward pass in their own test files
        from aip.run import describe_models

        counts = describe_models(r)
        assert any(k.startswith("student") for k in counts) and all(v > 0 for v in counts.values()), counts
        return
    modality = load_modality(r.modality)
    k = datasets.info(r.eval.dataset).num_classes or 4
    channels = r.source.channels
    with torch.device("meta"):
        specs = [r.student] + ([r.teacher] if r.teacher.kind != "hub" else [])
        for spec in specs:
            model = modality.model(spec, recipe=r, num_classes=k, pretrained=False)
            out = model(torch.empty(2, channels, r.source.size, r.source.size))
            assert tuple(out.shape) == (2, k), spec.arch


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_settings(name: str):
    r = recipe_mod.load(ROOT / "recipes" / f"{name}.toml")
    cifar = name.startswith("cifar")
    assert r.modality == "image"
    assert r.loss.kind == "kl" and r.loss.temperature == 8 and not r.loss.t2_scale
    assert r.augment.cutmix == (0.25 if cifar else 1.0) and r.augment.cutmix_p == 1.0
    assert r.source.size == PAPER[name] and r.source.uri.startswith("https://")
    geometry = (r.source.init_crop, tuple(r.source.scale), r.source.degrees, r.source.shear)
    assert geometry == (0.5, (0.002, 1.0), 30, 30)
    assert r.source.jitter_p == 0.5
    assert r.train.batch_size == 512
    if cifar:
        assert (r.teacher.arch, r.student.arch) == ("wrn_40_4", "wrn_16_4")
        assert (r.train.optimizer, r.train.lr, r.train.epochs, r.train.samples_per_epoch) == ("adam", 1e-3,
                                                                                              1000, 50_000)
        assert r.augment.crop == "pad" and r.augment.pad == 4
    else:
        assert r.teacher.arch == "resnet18" and r.train.epochs == 200
        assert (r.train.optimizer, r.train.lr, r.train.weight_decay) == ("adamw", 0.01, 5e-4)
        assert r.augment.crop == "rrc" and tuple(r.augment.crop_scale) == (0.08, 1.0)
        assert (r.augment.jitter_p, r.augment.grayscale_p, r.augment.solarize_p) == (0.8, 0.2, 0.2)
    assert r.eval.dataset == {"imagenet-r50x2": "imagenet"}.get(name, name)


def test_imagenet_is_resnet18_to_resnet50():
    r = recipe_mod.load(ROOT / "recipes" / "imagenet.toml")
    assert (r.teacher.kind, r.teacher.arch, r.teacher.weights) == ("pretrained", "resnet18", "IMAGENET1K_V1")
    assert r.student.arch == "resnet50"
    assert r.train.samples_per_epoch == 1_281_167
    wide = recipe_mod.load(ROOT / "recipes" / "imagenet-r50x2.toml")
    assert wide.student.arch == "wide_resnet50_2"
    assert wide.to_dict() | {"student": {}, "name": "", "description": ""} == \
        r.to_dict() | {"student": {}, "name": "", "description": ""}, "the two differ only in the student"


def test_overrides_through_the_real_cli(tmp_path):
    """``python -m aip check RECIPE --set ...`` (the documented way to shorten a run) prints the change."""
    photo = tmp_path / "animals.png"
    photo.write_bytes(b"checked to exist by `aip check`, decoded only by a run")
    result = run_cli("check", "recipes/cifar10.toml", "--set", "train.epochs=3",
                     "--set", f"source.uri={photo.as_posix()}")
    assert result.returncode == 0, result.stderr
    printed = tomllib.loads(result.stdout)
    assert printed["train"]["epochs"] == 3 and printed["source"]["uri"] == photo.as_posix()
    assert "OK: 294 steps of 512 views" in result.stderr
