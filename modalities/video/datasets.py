"""Labelled video datasets (Kinetics-400, UCF101, any folder of class folders), decoded with PyAV.

Readers find ``(file, label)`` pairs in the layouts users have; :class:`VideoClips` cuts clips from them. The
test split gives ``source.test_clips`` uniformly spaced clips per video (``(views, C, T, S, S)``, short side
resized to ``source.test_short_side``, centre crop ``source.size``); the core averages the softmax over them.
The training split (a teacher trained by ``aip teacher``) gives one random clip with a random short-side scale,
random crop and flip. Files that cannot be opened are found when the dataset is indexed (the result is cached
per file list) and skipped with one warning that counts them; a file that fails later is replaced by the next
video, with one warning, so an evaluation never stops half-way.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from aip.cache import cache_dir
from aip.errors import AipError, UsageError
from aip.files import write_text
from aip.modality import LabelledData
from modalities.video.config import VideoSourceConfig
from modalities.video.decode import DecodeError, clip_starts, clip_times, decode, decode_all, frames_at, probe
from modalities.video.readers import READERS, Index

# A split whose decoded frames fit in this many bytes is kept in memory after each file's first decode, so
# the offline sets (motion: 192 training videos, about 5 MB decoded) are not decoded again at every epoch or
# at every step of a dataset:train student. Each DataLoader worker holds its own copy.
MEMORY_CACHE_BYTES = 256 * 2**20


class VideoClips(Dataset):
    """``(clip, label)`` items of labelled video files; ``clip`` is ``(C, T, S, S)`` or ``(views, C, T, S, S)``.

    When the first decoded file times the number of files fits in ``cache_bytes``, every decoded video is kept
    in memory (as long as the running total fits); otherwise nothing is and each item decodes only the frames
    it needs.
    """

    def __init__(self, files: list[Path], labels: list[int], cfg: VideoSourceConfig, *, views: int,
                 train: bool, cache_bytes: int = MEMORY_CACHE_BYTES) -> None:
        self.files, self.labels, self.cfg, self.views, self.train = files, labels, cfg, views, train
        self.failures = 0
        self.cache_bytes = cache_bytes
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, float]] | None = {} if cache_bytes > 0 else None
        self._cached_bytes = 0

    def _decode(self, j: int, select: Any) -> np.ndarray:
        """``decode(self.files[j], select)``, served from the memory cache where the split fits in it."""
        if self._cache is None:
            return decode(self.files[j], select)
        if (hit := self._cache.get(j)) is None:
            hit = decode_all(self.files[j])
            size = hit[1].nbytes
            if not self._cache and size * len(self.files) > self.cache_bytes:
                self._cache = None  # the split does not fit: decode only the frames asked for from now on
            elif self._cached_bytes + size <= self.cache_bytes:
                self._cache[j] = hit
                self._cached_bytes += size
        times, frames, duration = hit
        return frames[np.asarray(select(times, duration), dtype=np.int64).clip(0, len(frames) - 1)]

    def __len__(self) -> int:
        return len(self.files)

    def clips(self, j: int) -> torch.Tensor:
        """Decode file ``j`` into ``(views, C, T, S, S)`` float clips in [0, 1]."""
        cfg = self.cfg
        span = (cfg.frames - 1) * cfg.data_stride + 1
        draw = float(torch.rand(())) if self.train else None

        def select(times: Any, duration: float) -> Any:
            starts = clip_starts(duration, fps=cfg.data_fps, span=span, clips=self.views, draw=draw)
            return frames_at(times, clip_times(starts, fps=cfg.data_fps, frames=cfg.frames,
                                               stride=cfg.data_stride).ravel())

        x = torch.from_numpy(self._decode(j, select)).permute(0, 3, 1, 2).float().div_(255)  # (V*T, 3, H, W)
        h, w = x.shape[-2:]
        short = cfg.test_short_side
        if self.train:  # random short-side scale in [1, 1.25] x the test scale
            short = int(short * (1 + 0.25 * float(torch.rand(()))))
        f = short / min(h, w)
        nh, nw = max(round(h * f), cfg.size), max(round(w * f), cfg.size)
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=f < 1, align_corners=False)
        if self.train:
            top = int(torch.randint(0, nh - cfg.size + 1, ()))
            left = int(torch.randint(0, nw - cfg.size + 1, ()))
        else:
            top, left = (nh - cfg.size) // 2, (nw - cfg.size) // 2
        x = x[..., top:top + cfg.size, left:left + cfg.size]
        if self.train and float(torch.rand(())) < cfg.train_hflip:
            x = x.flip(-1)
        return x.reshape(self.views, cfg.frames, 3, cfg.size, cfg.size).transpose(1, 2).clamp_(0, 1).contiguous()

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        for attempt in range(min(len(self.files), 20)):
            j = (i + attempt) % len(self.files)
            try:
                x = self.clips(j)
            except DecodeError as e:
                self.failures += 1
                if self.failures == 1:
                    print(f"warning: could not decode a video ({e}); it is replaced by the next one "
                          f"(further failures are counted, not reported)", file=sys.stderr)
                continue
            return (x if self.views > 1 else x[0]), self.labels[i]
        raise AipError(f"none of 20 videos from {self.files[i]} on could be decoded; check the dataset files")


def readable(files: list[Path], *, where: str) -> list[bool]:
    """Which ``files`` open and decode a first frame; cached per file list. Prints one warning counting the
    unreadable ones."""
    stats = [(str(f), *_stat(f)) for f in files]
    key = hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]
    path = cache_dir("video-index") / f"{key}.json"
    if path.is_file():
        bad: dict[str, str] = json.loads(path.read_text())
    else:
        bad = {str(f): reason for f in files if (reason := probe(f)) is not None}
        write_text(json.dumps(bad), path)
    if bad:
        first, reason = next(iter(bad.items()))
        print(f"warning: skipped {len(bad)} unreadable video file(s) of {len(files)} in {where} "
              f"(first: {Path(first).name}: {reason.splitlines()[0][:120]})", file=sys.stderr)
    return [str(f) not in bad for f in files]


def _stat(f: Path) -> tuple[int, int]:
    try:
        s = f.stat()
        return s.st_size, s.st_mtime_ns
    except OSError:
        return -1, 0


@dataclass(frozen=True)
class DatasetName:
    """A dataset name split into its reader and option (``ucf101:2`` is UCF101 with split fold 2)."""

    reader: str
    option: str

    @classmethod
    def parse(cls, name: str) -> DatasetName:
        reader, _, option = name.partition(":")
        if reader not in READERS:
            raise UsageError(f"unknown video dataset {name!r}; known: {', '.join(READERS.names())} "
                             f"(ucf101:2 and ucf101:3 pick the other split folds)")
        return cls(reader, option)


def load(name: str, *, root: Path, split: str, train: bool, cfg: VideoSourceConfig, download: bool,
         views_supported: bool = True) -> LabelledData:
    """The labelled ``split`` (``"train"`` or ``"test"``) of dataset ``name`` under ``root``.

    Args:
        name: ``kinetics400``, ``ucf101`` (``ucf101:2``/``:3`` for the other folds) or ``videofolder``.
        root: the dataset's folder (see docs/video.md for the layouts).
        split: ``"train"`` or ``"test"`` (Kinetics' and folders' ``val``).
        train: one random, lightly augmented clip per video (teacher training) instead of the test clips.
        cfg: the recipe's ``[source]`` (clip shape, frame rate and stride, test clips and resize).
        download: fetch Kinetics-400 with torchvision's downloader when ``root`` has no videos.
        views_supported: whether the core averages several clips per item; if not, one clip per video.

    Raises:
        AipError: unknown name, missing folder or files, no readable video found.
    """
    parsed = DatasetName.parse(name)
    index: Index = READERS.get(parsed.reader)(root, split=split, option=parsed.option, download=download)
    where = f"{name} {split} ({root})"
    ok = readable(index.files, where=where)
    files = [f for f, good in zip(index.files, ok, strict=True) if good]
    labels = [y for y, good in zip(index.labels, ok, strict=True) if good]
    if not files:
        raise AipError(f"no readable video in {where}; every file failed to decode")
    views = cfg.test_clips if (split == "test" and not train and views_supported) else 1
    dataset = VideoClips(files, labels, cfg, views=views, train=train)
    extra: dict[str, Any] = {"views": views} if views_supported else {}
    return LabelledData(dataset=dataset, num_classes=len(index.classes), classes=list(index.classes), **extra)


def names() -> list[str]:
    return READERS.names()
