"""Video datasets on tiny real video files written with PyAV in the Kinetics-400, UCF101 and folder layouts:
the readers, multi-clip test items, training clips, and unreadable files skipped with one counted warning.

The clips are written with the offline ``motion`` set's own writer (:func:`modalities.video.motion.write_video`);
the motion folder the other video tests share is ``tests.conftest.write_motion_folder``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from aip.errors import AipError
from modalities.video import datasets
from modalities.video.config import VideoSourceConfig
from modalities.video.motion import PANS, write_video

#: a textured scene moving in one of four directions: the classes need motion to tell apart
DIRECTIONS = PANS


def _ramp(frames: int = 12, h: int = 36, w: int = 48) -> np.ndarray:
    """Frames whose brightness encodes the frame index (frame t is uniformly 20 * t), to check clip timing."""
    return np.stack([np.full((h, w, 3), 20 * t, np.uint8) for t in range(frames)])


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


CFG = VideoSourceConfig(frames=4, size=32, data_fps=8.0, data_stride=1, test_clips=3, test_short_side=32)


def test_videofolder_multiclip_items_and_a_corrupt_file_skipped_with_one_warning(tmp_path, capsys):
    for split in ("train", "val"):
        for c in ("a", "b"):
            write_video(tmp_path / split / c / "0.mp4", _ramp())
    write_video(tmp_path / "val" / "b" / "1.avi", _ramp())
    (tmp_path / "val" / "a" / "broken.mp4").write_bytes(b"not a video at all")
    write_video(tmp_path / "val" / "b" / "2.mp4", _ramp())
    _truncate(tmp_path / "val" / "b" / "2.mp4")
    test = datasets.load("videofolder", root=tmp_path, split="test", train=False, cfg=CFG, download=False)
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "skipped 2 unreadable video file(s) of 5" in err
    assert test.num_classes == 2 and test.classes == ["a", "b"] and test.views == 3
    assert len(test.dataset) == 3
    clips, label = test.dataset[0]
    assert clips.shape == (3, 3, 4, 32, 32) and label == 0
    # 12 frames at 8 fps: the 3 clips of 4 frames start at frames 0, 4 and 8 (uniformly spaced)
    levels = (clips.mean(dim=(1, 3, 4)) * 255 / 20).round()
    assert levels.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert 0 <= clips.min() and clips.max() <= 1
    # the probe result is cached: indexing again does not re-open the files, and warns again once
    again = datasets.load("videofolder", root=tmp_path, split="test", train=False, cfg=CFG, download=False)
    assert len(again.dataset) == 3 and capsys.readouterr().err.count("warning") == 1


def test_videofolder_skips_hidden_entries_and_names_empty_classes(tmp_path, capsys):
    for split in ("train", "val"):
        for c in ("a", "b"):
            write_video(tmp_path / split / c / "0.mp4", _ramp())
        (tmp_path / split / ".ipynb_checkpoints").mkdir()
        write_video(tmp_path / split / ".ipynb_checkpoints" / "0.mp4", _ramp())
        (tmp_path / split / "a" / "._0.mp4").write_bytes(b"\0\5\26\7 AppleDouble resource fork")
    test = datasets.load("videofolder", root=tmp_path, split="test", train=False, cfg=CFG, download=False)
    assert test.classes == ["a", "b"] and len(test.dataset) == 2
    assert "warning" not in capsys.readouterr().err  # the hidden file was never opened
    (tmp_path / "train" / "emu").mkdir()
    with pytest.raises(AipError, match=r"videofolder: class folders emu in .*train hold no videos"):
        datasets.load("videofolder", root=tmp_path, split="train", train=True, cfg=CFG, download=False)


def test_training_clips_are_random_single_clips(tmp_path):
    for c in ("a", "b"):
        write_video(tmp_path / "train" / c / "0.mp4", _ramp(h=40, w=60))
    train = datasets.load("videofolder", root=tmp_path, split="train", train=True, cfg=CFG, download=False)
    torch.manual_seed(0)
    starts = set()
    for _ in range(12):
        clip, _ = train.dataset[0]
        assert clip.shape == (3, 4, 32, 32)
        levels = (clip.mean(dim=(0, 2, 3)) * 255 / 20).round().tolist()
        assert levels == [levels[0] + k for k in range(4)]  # consecutive frames (stride 1)
        starts.add(levels[0])
    assert len(starts) > 2


def test_a_file_that_fails_mid_evaluation_is_replaced_not_fatal(tmp_path, capsys):
    for c in ("a", "b"):
        write_video(tmp_path / "val" / c / "0.mp4", _ramp())
    test = datasets.load("videofolder", root=tmp_path, split="test", train=False, cfg=CFG, download=False)
    (tmp_path / "val" / "a" / "0.mp4").write_bytes(b"gone bad after indexing")
    clips, label = test.dataset[0]  # decodes class b's video instead, keeps the item's label
    assert clips.shape == (3, 3, 4, 32, 32) and label == 0
    assert test.dataset.failures == 1 and "could not decode" in capsys.readouterr().err


def _kinetics_csv(root: Path, split: str, rows: list[tuple[str, str, int, int]]) -> None:
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    with open(root / "annotations" / f"{split}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        for label, yid, t0, t1 in rows:
            w.writerow([label, yid, t0, t1, split])


def test_kinetics_class_folders_and_annotation_csv_use_the_official_class_indices(tmp_path):
    folders = tmp_path / "folders"
    write_video(folders / "val" / "air_drumming" / "x.mp4", _ramp())
    write_video(folders / "val" / "zumba" / "y.mp4", _ramp())
    data = datasets.load("kinetics400", root=folders, split="test", train=False, cfg=CFG, download=False)
    assert data.num_classes == 400 and data.classes[1] == "air drumming"
    assert sorted(data.dataset.labels) == [1, 399]
    annotated = tmp_path / "csv"
    write_video(annotated / "val" / "part1" / "abc_000010_000020.mp4", _ramp())
    write_video(annotated / "val" / "def_000000_000010.mp4", _ramp())
    _kinetics_csv(annotated, "val", [("abseiling", "abc", 10, 20), ("archery", "def", 0, 10),
                                     ("archery", "gone", 5, 15)])  # the last clip is missing on disk
    data = datasets.load("kinetics400", root=annotated, split="test", train=False, cfg=CFG, download=False)
    assert [f.name for f in data.dataset.files] == ["abc_000010_000020.mp4", "def_000000_000010.mp4"]
    assert data.dataset.labels == [0, 5]


def test_ucf101_official_split_lists(tmp_path):
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    names = {c: [f"v_{c}_g0{g}_c01.avi" for g in (1, 2)] for c in ("ApplyEyeMakeup", "Archery")}
    for c, files in names.items():
        for f in files:
            write_video(tmp_path / "UCF-101" / c / f, _ramp())
    (lists / "trainlist01.txt").write_text("".join(f"{c}/{fs[1]} {i + 1}\n" for i, (c, fs) in enumerate(names.items())))
    (lists / "testlist01.txt").write_text("".join(f"{c}/{fs[0]}\n" for c, fs in names.items()))
    train = datasets.load("ucf101", root=tmp_path, split="train", train=True, cfg=CFG, download=False)
    test = datasets.load("ucf101", root=tmp_path, split="test", train=False, cfg=CFG, download=False)
    assert train.num_classes == test.num_classes == 2 and test.classes == ["ApplyEyeMakeup", "Archery"]
    assert [f.name for f in test.dataset.files] == ["v_ApplyEyeMakeup_g01_c01.avi", "v_Archery_g01_c01.avi"]
    assert test.dataset.labels == [0, 1] and train.dataset[1][0].shape == (3, 4, 32, 32)
    with pytest.raises(AipError, match="split list .*testlist02.txt does not exist"):
        datasets.load("ucf101:2", root=tmp_path, split="test", train=False, cfg=CFG, download=False)


@pytest.mark.parametrize(("name", "message"), [
    ("kinetics400", r"dataset folder .*val does not exist; expected ROOT/val/CLASS/\*.mp4"),
    ("ucf101", r"UCF101 not found in .*; expected ROOT/UCF-101/CLASS/\*.avi"),
    ("videofolder", r"dataset folder .*val does not exist"),
    ("ucf101:7", r"UCF101 has split folds 1, 2 and 3"),
    ("hmdb51", r"unknown video dataset 'hmdb51'.*known: kinetics400, motion, motion-objects, ucf101, videofolder"),
])
def test_missing_data_gives_one_line_errors(tmp_path, name, message):
    with pytest.raises(AipError, match=message) as e:
        datasets.load(name, root=tmp_path / "nowhere", split="test", train=False, cfg=CFG, download=False)
    assert "\n" not in str(e.value)


def test_folder_without_videos_is_an_error(tmp_path):
    (tmp_path / "val" / "a").mkdir(parents=True)
    (tmp_path / "val" / "a" / "notes.txt").write_text("no videos here")
    with pytest.raises(AipError, match=r"no videos .* found in"):
        datasets.load("videofolder", root=tmp_path, split="test", train=False, cfg=CFG, download=False)


def test_small_splits_are_decoded_once_and_kept_in_memory_with_the_same_clips(tmp_path):
    for split in ("train", "val"):
        for c in ("a", "b"):
            write_video(tmp_path / split / c / "0.mp4", _ramp())
    kw = dict(root=tmp_path, split="train", train=True, cfg=CFG, download=False)
    cached = datasets.load("videofolder", **kw).dataset
    plain = datasets.VideoClips(cached.files, cached.labels, CFG, views=1, train=True, cache_bytes=0)
    for _ in range(3):  # same random clips from memory as from the files (twice from memory for item 0)
        for i in (0, 1, 0):
            torch.manual_seed(i)
            a = cached[i][0]
            torch.manual_seed(i)
            assert torch.equal(a, plain[i][0])
    assert set(cached._cache) == {0, 1} and cached._cached_bytes == 2 * 12 * 36 * 48 * 3
    (tmp_path / "train" / "a" / "0.mp4").write_bytes(b"gone")  # no longer read: served from memory
    assert cached[0][0].shape == (3, 4, 32, 32) and cached.failures == 0
    # a split that does not fit is never cached: each item decodes only the frames it needs
    big = datasets.load("videofolder", **{**kw, "split": "test"}).dataset
    big.cache_bytes = 12 * 36 * 48 * 3  # one video fits, the split (two) does not
    big[0]
    assert big._cache is None and big[1][0].shape == (3, 4, 32, 32)


def test_videofolder_follows_linked_sub_folders_and_refuses_a_loop(tmp_path):
    """A class's sub-folder that is a symbolic link was left out in silence (``Path.rglob`` does not follow
    links): its videos are read now, as image and audio class folders read theirs; a loop is refused."""
    import os

    from modalities.video.readers import videofolder

    for c in ("a", "b"):
        (tmp_path / "train" / c).mkdir(parents=True)
        (tmp_path / "train" / c / "0.mp4").write_bytes(b"")  # the index lists files; nothing is decoded here
    (tmp_path / "store" / "more").mkdir(parents=True)
    (tmp_path / "store" / "more" / "1.mp4").write_bytes(b"")
    os.symlink(tmp_path / "store" / "more", tmp_path / "train" / "a" / "more")
    index = videofolder(tmp_path, split="train")
    assert sorted(p.relative_to(tmp_path / "train").as_posix() for p in index.files) == \
        ["a/0.mp4", "a/more/1.mp4", "b/0.mp4"]
    assert index.labels == [0, 0, 1]
    os.symlink("..", tmp_path / "train" / "b" / "up")
    with pytest.raises(AipError, match=r"train/b/up is a symbolic link to .*, a folder that contains it \(a loop\)"):
        videofolder(tmp_path, split="train")
