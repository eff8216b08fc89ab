"""Where the videos of each dataset are: readers that turn an on-disk layout into ``(files, labels, classes)``.

Layouts (``ROOT`` is ``eval.root``):

- ``kinetics400``: ``ROOT/{train,val}/CLASS/*.mp4`` (class folders, names with spaces or underscores), or
  ``ROOT/annotations/{train,val}.csv`` (``label,youtube_id,time_start,time_end,split``) with clips named
  ``{youtube_id}_{time_start:06d}_{time_end:06d}.mp4`` anywhere under ``ROOT/{train,val}/``. Class indices are
  those of the official 400-class list (alphabetical, as the pretrained Kinetics models use them).
- ``ucf101``: ``ROOT/UCF-101/CLASS/v_CLASS_gXX_cYY.avi`` and ``ROOT/ucfTrainTestlist/`` (``classInd.txt``,
  ``trainlist0F.txt``, ``testlist0F.txt``; fold ``F`` is 1, or 2/3 with ``ucf101:2``/``ucf101:3``).
- ``videofolder``: ``ROOT/train/CLASS/*`` and ``ROOT/val/CLASS/*`` (or ``ROOT/test/``), any video extension.
- ``motion``: the offline 6-class camera-motion set of :mod:`modalities.video.motion`, built under ``ROOT`` (the
  dataset cache unless ``eval.root`` is set) on first use and read as a ``videofolder``.
- ``motion-objects``: the offline 8-class object-motion set of :mod:`modalities.video.objects` (an object moving,
  growing, shrinking or turning over a drifting background), built and read the same way.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aip.errors import AipError, UsageError
from aip.folders import check_links, class_names, empty_classes_error, visible
from aip.registry import Registry
from modalities.video.decode import VIDEO_EXTENSIONS


@dataclass(frozen=True)
class Index:
    """The labelled files of one split."""

    files: list[Path]
    labels: list[int]
    classes: list[str]


Reader = Callable[..., Index]
READERS: Registry[Reader] = Registry("video dataset")

KINETICS_URL = "https://github.com/cvdfoundation/kinetics-dataset"
UCF101_URL = "https://www.crcv.ucf.edu/data/UCF101.php"


def normalise_class(name: str) -> str:
    """``"Petting_animal_(not_cat)"`` -> ``"petting animal not cat"``: folder and CSV spellings compare equal."""
    return re.sub(r"[^a-z0-9]+", " ", name.lower()).strip()


def _videos(folder: Path) -> list[Path]:
    """The video files under ``folder``, at any depth, skipping hidden files and folders. Symbolic links to
    folders are followed, as the image and audio class folders follow them (``Path.rglob`` does not, and
    silently left a linked sub-folder's videos out); :func:`aip.folders.check_links` has refused loops first."""
    found = []
    for top, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if visible(d))
        found += [Path(top) / n for n in names if visible(n) and Path(n).suffix.lower() in VIDEO_EXTENSIONS]
    return sorted(found)


def _class_folders(split_dir: Path, layout: str) -> list[Path]:
    if not split_dir.is_dir():
        raise AipError(f"dataset folder {split_dir} does not exist; expected {layout}")
    folders = [split_dir / name for name in class_names(split_dir)]
    if not folders:
        raise AipError(f"no class folders in {split_dir}; expected {layout}")
    return folders


def _split_dir(root: Path, split: str, layout: str) -> Path:
    names = ["train"] if split == "train" else ["val", "test"]
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise AipError(f"dataset folder {root / names[0]} does not exist; expected {layout}")


@READERS.register("videofolder")
def videofolder(root: Path, *, split: str, option: str = "", download: bool = False) -> Index:  # noqa: ARG001
    """Class folders of videos: ``ROOT/train/CLASS/*`` and ``ROOT/val/CLASS/*`` (or ``ROOT/test``)."""
    layout = "ROOT/train/CLASS/*.mp4 and ROOT/val/CLASS/*.mp4 (or ROOT/test/...)"
    split_dir = _split_dir(root, split, layout)
    train_dir = root / "train"
    classes = [p.name for p in _class_folders(train_dir if train_dir.is_dir() else split_dir, layout)]
    files, labels = [], []
    check_links(split_dir, classes, "videofolder")
    for folder in _class_folders(split_dir, layout):
        if folder.name not in classes:
            raise AipError(f"class folder {folder} is not among the training classes in {train_dir}")
        for f in _videos(folder):
            files.append(f)
            labels.append(classes.index(folder.name))
    if not files:
        raise AipError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) found in {split_dir}; expected {layout}")
    if split == "train" and len(set(labels)) < len(classes):
        raise empty_classes_error("videofolder", split_dir, [c for i, c in enumerate(classes) if i not in set(labels)],
                                  f"videos ({', '.join(VIDEO_EXTENSIONS)})")
    return Index(files, labels, classes)


@READERS.register("motion")
def motion(root: Path, *, split: str, option: str = "", download: bool = False) -> Index:  # noqa: ARG001
    """The offline camera-motion set (pans in four directions, zoom in and out), built once under ``root``."""
    from modalities.video.motion import build_motion_set  # PyAV's writer, only when the set is asked for

    return videofolder(build_motion_set(root), split=split)


@READERS.register("motion-objects")
def motion_objects(root: Path, *, split: str, option: str = "", download: bool = False) -> Index:  # noqa: ARG001
    """The offline object-motion set (moves in four directions, zoom in and out, turns), built once under
    ``root``."""
    from modalities.video.objects import build_object_set  # PyAV's writer, only when the set is asked for

    return videofolder(build_object_set(root), split=split)


def kinetics_classes() -> list[str]:
    """The official Kinetics-400 class names in index order."""
    from torchvision.models._meta import _KINETICS400_CATEGORIES

    return list(_KINETICS400_CATEGORIES)


def _download_kinetics(root: Path, split: str) -> None:
    """Fetch and extract Kinetics-400 ``split`` into ``root/split/CLASS/`` with torchvision's downloader."""
    from torchvision.datasets import Kinetics

    try:
        Kinetics(str(root), frames_per_clip=1, num_classes="400", split=split, download=True, num_workers=1)
    except Exception as e:  # noqa: BLE001 - network, disk or archive errors all end the same way
        raise AipError(f"could not download Kinetics-400 {split} into {root} ({type(e).__name__}: "
                       f"{str(e).splitlines()[0] if str(e) else ''}); fetch it from {KINETICS_URL}") from None


@READERS.register("kinetics400")
def kinetics400(root: Path, *, split: str, option: str = "", download: bool = False) -> Index:  # noqa: ARG001
    """Kinetics-400 as class folders or as the annotation CSVs plus clips (see the module docstring)."""
    name = "train" if split == "train" else "val"
    layout = (f"ROOT/{name}/CLASS/*.mp4, or ROOT/annotations/{name}.csv with clips "
              f"YOUTUBEID_START_END.mp4 under ROOT/{name}/ (get it from {KINETICS_URL}, or set eval.download = "
              f"true to use torchvision's downloader)")
    classes = kinetics_classes()
    lookup = {normalise_class(c): i for i, c in enumerate(classes)}
    csv_file = root / "annotations" / f"{name}.csv"
    split_dir = root / name
    if not split_dir.is_dir() and download:
        _download_kinetics(root, name)
    if not split_dir.is_dir():
        raise AipError(f"dataset folder {split_dir} does not exist; expected {layout}")
    files, labels = [], []
    if csv_file.is_file():
        present = {p.name: p for p in _videos(split_dir)}
        with open(csv_file, newline="") as fh:
            for row in csv.DictReader(fh):
                try:
                    label = lookup[normalise_class(row["label"])]
                    clip = f"{row['youtube_id']}_{int(row['time_start']):06d}_{int(row['time_end']):06d}.mp4"
                except KeyError as e:
                    raise AipError(f"{csv_file}: unknown Kinetics-400 class or missing column ({e}); expected "
                                   f"columns label,youtube_id,time_start,time_end,split") from None
                if clip in present:  # clips missing on disk are left out (many YouTube videos are gone)
                    files.append(present[clip])
                    labels.append(label)
    else:
        for folder in _class_folders(split_dir, layout):
            label = lookup.get(normalise_class(folder.name))
            if label is None:
                raise AipError(f"class folder {folder.name!r} in {split_dir} is not a Kinetics-400 class")
            for f in _videos(folder):
                files.append(f)
                labels.append(label)
    if not files:
        raise AipError(f"no videos found in {split_dir}; expected {layout}")
    return Index(files, labels, classes)


@READERS.register("ucf101")
def ucf101(root: Path, *, split: str, option: str = "", download: bool = False) -> Index:  # noqa: ARG001
    """UCF101 with its official split lists (fold 1 by default; ``ucf101:2``, ``ucf101:3``)."""
    fold = option or "1"
    if fold not in ("1", "2", "3"):
        raise UsageError(f"UCF101 has split folds 1, 2 and 3; got {fold!r} (use ucf101, ucf101:2 or ucf101:3)")
    layout = (f"ROOT/UCF-101/CLASS/*.avi and ROOT/ucfTrainTestlist/{{classInd,trainlist0{fold},testlist0{fold}}}"
              f".txt (download UCF101.rar and UCF101TrainTestSplits-RecognitionTask.zip from {UCF101_URL})")
    videos, lists = root / "UCF-101", root / "ucfTrainTestlist"
    if not videos.is_dir() or not (lists / "classInd.txt").is_file():
        raise AipError(f"UCF101 not found in {root}; expected {layout}")
    classes = [line.split()[1] for line in (lists / "classInd.txt").read_text().splitlines() if line.strip()]
    list_file = lists / f"{'trainlist' if split == 'train' else 'testlist'}0{fold}.txt"
    if not list_file.is_file():
        raise AipError(f"split list {list_file} does not exist; expected {layout}")
    files, labels = [], []
    missing = 0
    for line in list_file.read_text().splitlines():
        if not line.strip():
            continue
        rel = line.split()[0]
        cls = rel.split("/")[0]
        if cls not in classes:
            raise AipError(f"{list_file}: class {cls!r} is not in classInd.txt")
        path = videos / rel
        if not path.is_file():
            missing += 1
            continue
        files.append(path)
        labels.append(classes.index(cls))
    if not files:
        raise AipError(f"none of the videos listed in {list_file} exist under {videos}; expected {layout}")
    if missing:
        import sys

        print(f"warning: {missing} video(s) listed in {list_file.name} are missing under {videos}", file=sys.stderr)
    return Index(files, labels, classes)
