"""ImageNet-100: CMC's 100 classes picked out of a (tiny, fake) ImageNet folder of JPEGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aip.errors import AipError
from modalities.image import datasets
from modalities.image.imagenet100 import WNIDS

OTHERS = ["n01440764", "n01443537", "n15075141"]  # ImageNet-1k classes that are not in ImageNet-100


def write_imagenet(root: Path, classes: list[str], *, per_class: dict[str, int]) -> None:
    """``root/{train,val}/<wnid>/*.JPEG`` with the class index drawn into the pixels (red = index)."""
    for split, n in per_class.items():
        for wnid in classes:
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(n):
                value = sorted(WNIDS).index(wnid) * 2 + 20 if wnid in WNIDS else 0
                pixels = np.full((12, 16, 3), (value, 128, 128), np.uint8)
                Image.fromarray(pixels).save(folder / f"{wnid}_{i}.JPEG", quality=100)


def test_the_class_list_is_cmcs():
    assert len(WNIDS) == len(set(WNIDS)) == 100
    assert WNIDS[:3] == ("n02869837", "n01749939", "n02488291") and WNIDS[-1] == "n02090622"
    assert all(len(w) == 9 and w.startswith("n") and w[1:].isdigit() for w in WNIDS)
    assert datasets.info("imagenet100").num_classes == 100


def test_selects_the_hundred_classes_from_imagenet(tmp_path: Path):
    write_imagenet(tmp_path, list(WNIDS) + OTHERS, per_class={"train": 2, "val": 1})
    val = datasets.load("imagenet100", root=tmp_path, split="test", train=False, download=False, size=8, channels=3)
    train = datasets.load("imagenet100", root=tmp_path, split="train", train=True, download=False, size=8,
                          channels=3)
    assert val.classes == sorted(WNIDS) == train.classes and val.num_classes == 100
    assert len(val.dataset) == 100 and len(train.dataset) == 200  # the three other classes are left out
    for i in (0, 37, 99):
        x, y = val.dataset[i]
        assert x.shape == (3, 8, 8) and y == i
        assert abs(float(x[0].mean()) * 255 - (2 * y + 20)) < 3  # the image of class y has label y


def test_missing_classes_are_one_line_errors(tmp_path: Path):
    write_imagenet(tmp_path, list(WNIDS[:60]) + OTHERS, per_class={"val": 1})
    with pytest.raises(AipError, match="lacks 40 of the 100 ImageNet-100 class folders"):
        datasets.load("imagenet100", root=tmp_path, split="test", train=False, download=False, size=8, channels=3)
    with pytest.raises(AipError, match="no folder .*train.*imagenet100 expects"):
        datasets.load("imagenet100", root=tmp_path, split="train", train=False, download=False, size=8, channels=3)
    for wnid in WNIDS[60:]:
        (tmp_path / "val" / wnid).mkdir()
    with pytest.raises(AipError, match="no images in 40 class folders"):
        datasets.load("imagenet100", root=tmp_path, split="test", train=False, download=False, size=8, channels=3)


def test_recipe_states_the_paper():
    from aip import recipe as recipe_mod
    from tests.conftest import ROOT

    path = ROOT / "recipes" / "imagenet100.toml"
    r = recipe_mod.load(path)
    assert r.eval.dataset == "imagenet100" and (r.teacher.kind, r.teacher.arch) == ("train", "resnet18")
    assert r.student.arch == "resnet50"
    header = path.read_text().split("\nmodality")[0]
    assert all(n in header for n in ("89.6 %", "84.4 %", "88.5 %", "wide_resnet50_2"))
