"""The offline ``motion-objects`` set (:mod:`modalities.video.objects`): its layout and counts, train and test
textures apart, every class's motion measured on the written and decoded frames, and determinism."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from modalities.video import datasets as video_datasets
from modalities.video import objects as O
from modalities.video.config import VideoSourceConfig
from modalities.video.decode import decode
from modalities.video.motion import write_video

BUILD = O.build_object_set


def _small(root: Path) -> Path:
    return BUILD(root, train_per_class=2, test_per_class=1)


def test_the_set_is_a_videofolder_built_once_and_read_by_its_dataset_name(tmp_path: Path, monkeypatch):
    folder = _small(tmp_path)
    for split, n in (("train", 2), ("val", 1)):
        assert sorted(p.name for p in (folder / split).iterdir()) == sorted(O.CLASSES)
        assert all(len(list((folder / split / c).glob("*.mp4"))) == n for c in O.CLASSES)
        assert set(O.clips(folder, split)) == set((folder / split).rglob("*.mp4"))  # every file has its parameters
    stamp = (folder / "val" / "left" / "000.mp4").stat().st_mtime_ns
    assert _small(tmp_path) == folder and (folder / "val" / "left" / "000.mp4").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no half-built folder left behind

    monkeypatch.setattr(O, "build_object_set", _small)
    cfg = VideoSourceConfig(frames=8, size=32, pan_frames=8, data_fps=8.0, data_stride=1, test_clips=1,
                            test_short_side=32)
    test = video_datasets.load("motion-objects", root=tmp_path, split="test", train=False, cfg=cfg, download=False)
    assert test.num_classes == 8 and test.classes == sorted(O.CLASSES) and len(test.dataset) == 8
    clip, label = test.dataset[0]
    assert clip.shape == (3, 8, 32, 32) and test.classes[label] == "down"


def test_train_and_test_never_share_a_texture(tmp_path: Path):
    folder = _small(tmp_path)
    train, test = O.clips(folder, "train").values(), O.clips(folder, "val").values()
    # by construction: every texture's seed names its split
    assert {c.seed[0] for c in train} == {0} and {c.seed[0] for c in test} == {1}
    assert len({c.seed for c in train}) == len(train)

    seen = [O.textures(c, np.random.default_rng(c.seed)) for c in train]
    for c in test:
        obj, bg = O.textures(c, np.random.default_rng(c.seed))
        assert not any(np.allclose(obj, o) for o, _ in seen)
        assert not any(b.shape == bg.shape and np.allclose(bg, b) for _, b in seen)


def _written(clip: O.Clip, tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The clip as written to MPEG-4 and decoded (``(T, H, W, 3)`` uint8), and the object's pixels
    (``(T, H, W)`` bool): where the rendered frames differ from the background rendered alone, holes filled.

    The mask comes from the rendered frames because MPEG-4 blurs the background's fine colour noise; the decoded
    frames are checked to be those frames."""
    rendered = O.render(clip)
    frames = decode(write_video(tmp_path / f"{clip.motion}.mp4", rendered), lambda t, d: np.arange(len(t)))
    luma = np.array([0.299, 0.587, 0.114])
    assert np.abs((frames.astype(float) - rendered) @ luma).mean() < 8  # the file holds the rendered frames
    differs = np.abs((rendered.astype(float) - O.render(clip, with_object=False)) @ luma) > 4
    return frames, np.stack([ndimage.binary_fill_holes(ndimage.binary_closing(m)) for m in differs])


def _turn(frames: np.ndarray, mask: np.ndarray, centre: tuple[float, float], t: int) -> float:
    """The angle (degrees, clockwise on screen) that best maps frame ``t`` onto frame ``t + 1`` around
    ``centre``, compared on the object's pixels."""
    a = torch.from_numpy(frames[t]).permute(2, 0, 1)[None].float()
    b = torch.from_numpy(frames[t + 1]).permute(2, 0, 1).float()
    size = a.shape[-1]
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    best, angle = math.inf, 0.0
    for deg in range(-30, 31):
        r = math.radians(deg)
        # the content turned by +r: the pixel at p shows what frame t shows at R(-r)(p - c) + c
        x = math.cos(r) * (xs - centre[0]) + math.sin(r) * (ys - centre[1]) + centre[0]
        y = -math.sin(r) * (xs - centre[0]) + math.cos(r) * (ys - centre[1]) + centre[1]
        grid = torch.stack([x / size * 2 - 1, y / size * 2 - 1], -1)[None]
        moved = F.grid_sample(a, grid, mode="bilinear", align_corners=False)[0]
        err = float(((moved - b).abs().sum(0) * torch.from_numpy(mask[t + 1])).sum())
        if err < best:
            best, angle = err, float(deg)
    return angle


@pytest.mark.parametrize("motion", O.CLASSES)
def test_each_class_moves_the_object_as_its_name_says(motion: str, tmp_path: Path):
    clip = O.draw(motion, split="val", index=0, rng=np.random.default_rng(3))
    frames, mask = _written(clip, tmp_path)
    assert frames.shape == (8, 32, 32, 3)
    area = mask.sum(axis=(1, 2)).astype(float)
    ys, xs = np.mgrid[0:32, 0:32] + 0.5
    centroid = np.stack([(xs * mask).sum(axis=(1, 2)), (ys * mask).sum(axis=(1, 2))], 1) / area[:, None]
    shift = centroid[-1] - centroid[0]
    growth = area[-1] / area[0]
    if motion in O.MOVES:
        direction = np.asarray(O.MOVES[motion])
        assert shift @ direction > 6 and abs(shift @ direction[::-1]) < 2, shift  # along its direction only
        assert 0.75 < growth < 1.33
    elif motion in O.ZOOMS:
        assert (growth > 1.8) if O.ZOOMS[motion] > 0 else (growth < 1 / 1.8), area
        assert np.abs(shift).max() < 2
    else:
        turns = [_turn(frames, mask, clip.centre, t) for t in range(0, 7, 2)]
        assert all(O.TURNS[motion] * a >= 5 for a in turns), turns  # clockwise on screen: a growing angle
        assert 0.75 < growth < 1.33 and np.abs(shift).max() < 2


def test_the_same_seed_builds_the_same_set(tmp_path: Path):
    a, b = _small(tmp_path / "a"), _small(tmp_path / "b")
    assert (a / "clips.json").read_text() == (b / "clips.json").read_text()
    for f in sorted((a / "val").rglob("*.mp4")):
        assert f.read_bytes() == (b / f.relative_to(a)).read_bytes()
    rng = np.random.default_rng(0)
    first = O.draw("rotate-cw", split="train", index=0, rng=rng)
    assert O.draw("rotate-cw", split="train", index=0, rng=np.random.default_rng(0)) == first
    assert O.draw("rotate-cw", split="train", index=0, rng=rng) != first  # the next draw differs


def test_cnn3d_max_pooling_keeps_the_weights_and_rejects_unknown_pools():
    from aip.errors import AipError
    from modalities.video.models import build

    mean = build("cnn3d", num_classes=8, frames=8, size=32, pretrained=False, kwargs={"width": 4})
    peak = build("cnn3d", num_classes=8, frames=8, size=32, pretrained=False, kwargs={"width": 4, "pool": "max"})
    peak.load_state_dict(mean.state_dict())  # the same weights, pooled differently
    x = torch.rand(2, 3, 8, 32, 32)
    assert peak.eval()(x).shape == (2, 8) and not torch.allclose(peak(x), mean.eval()(x))
    with pytest.raises(AipError, match="pool must be 'mean' or 'max'"):
        build("cnn3d", num_classes=8, frames=8, size=32, pretrained=False, kwargs={"pool": "avg"})


def test_a_teacher_trained_again_gets_its_accuracy_measured_again(tmp_path: Path, monkeypatch):
    """``aip teacher`` reports the accuracy of the teacher it has, not one cached for an earlier teacher of the
    same recipe (trained before ``--force``, or on a set since rebuilt)."""
    from aip import recipe as recipe_mod
    from aip.modality import LabelledData
    from aip.run import teacher_accuracy
    from aip.teacher import teacher_path
    from tests.conftest import ROOT

    monkeypatch.setenv("AIP_CACHE", str(tmp_path))

    class Listed(torch.utils.data.Dataset):
        files = [tmp_path / "a.mp4", tmp_path / "b.mp4"]

        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            return torch.full((3,), float(i)), i

    class Says(torch.nn.Module):  # always predicts ``label``
        def __init__(self, label: int) -> None:
            super().__init__()
            self.label = label

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.one_hot(torch.full((x.shape[0],), self.label), 8).float()

    r = recipe_mod.load(ROOT / "recipes" / "motion-objects.toml", ["eval.batch_size=2"])
    test = LabelledData(dataset=Listed(), num_classes=8, classes=list("abcdefgh"))
    path = teacher_path(r, test)
    path.write_bytes(b"first")
    assert teacher_accuracy(r, Says(0), test, device=torch.device("cpu"))["top1"] == 50.0
    assert teacher_accuracy(r, Says(1), test, device=torch.device("cpu"))["top1"] == 50.0  # the same teacher: cached
    path.unlink()
    path.write_bytes(b"second, retrained")
    assert teacher_accuracy(r, Says(5), test, device=torch.device("cpu"))["top1"] == 0.0
