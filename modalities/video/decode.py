"""Reading video files with PyAV: decode once, pick frames by time, and the clip timing of the evaluation protocol.

A clip is ``frames`` frames ``stride`` apart on a time grid of ``fps`` frames per second (X3D's "4x12" is 4
frames, 12 apart, at 30 fps). Each grid time is served by the last decoded frame shown at or before it, so
files of any frame rate give clips of the same duration.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")


class DecodeError(Exception):
    """A video file could not be opened or holds no decodable video frame."""


def decode(path: str | Path, select: Callable[[np.ndarray, float], np.ndarray]) -> np.ndarray:
    """Decode ``path`` and return the frames ``select`` asks for as ``(N, H, W, 3)`` uint8 RGB.

    Args:
        path: a video file PyAV can read.
        select: ``select(times, duration) -> indices``: given every frame's presentation time (seconds,
            ascending) and the video's duration, the indices of the frames wanted (repeats allowed).

    Raises:
        DecodeError: the file cannot be opened, has no video stream, or no frame decodes.
    """
    def pick(frames: list[Any], t: np.ndarray, duration: float) -> np.ndarray:
        idx = np.asarray(select(t, duration), dtype=np.int64).clip(0, len(frames) - 1)
        wanted = {int(i): frames[i].to_ndarray(format="rgb24") for i in np.unique(idx)}  # only these convert
        return np.stack([wanted[int(i)] for i in idx])

    return _decode(path, pick)[0]


def decode_all(path: str | Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Every frame of ``path``: ``(times, frames, duration)``, frames ``(N, H, W, 3)`` uint8 in time order.

    ``frames[select(times, duration)]`` equals ``decode(path, select)``; for a cache of whole decoded videos.
    """
    x, t, duration = _decode(path, lambda frames, t, d: np.stack([f.to_ndarray(format="rgb24") for f in frames]))
    return t, x, duration


def _decode(path: str | Path, convert: Callable[[list[Any], np.ndarray, float], np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray, float]:
    """Open ``path``, decode every frame, sort them by time: ``(convert(frames, times, duration), times,
    duration)``."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DecodeError(f"{path} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            frames, times = [], []
            try:
                for frame in container.decode(stream):
                    frames.append(frame)
                    times.append(float(frame.time) if frame.time is not None else len(times) / rate)
            except av.error.FFmpegError:
                pass  # a truncated file: keep the frames decoded so far
            if not frames:
                raise DecodeError(f"{path} has no decodable video frame")
            order = np.argsort(np.asarray(times), kind="stable")
            t = np.asarray(times)[order]
            t = t - t[0]
            duration = float(t[-1] + 1.0 / rate)
            return convert([frames[i] for i in order], t, duration), t, duration
    except DecodeError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise DecodeError(f"{path}: {type(e).__name__}: {e}") from None


def probe(path: str | Path) -> str | None:
    """``None`` if ``path`` opens and its first video frame decodes, else the reason it does not."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return "no video stream"
            for _frame in container.decode(container.streams.video[0]):
                return None
            return "no decodable video frame"
    except (av.error.FFmpegError, OSError, ValueError) as e:
        return f"{type(e).__name__}: {e}"


def frames_at(times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Index of the frame shown at each ``grid`` time: the last frame whose time is <= it."""
    return np.clip(np.searchsorted(times, grid + 1e-6, side="right") - 1, 0, len(times) - 1)


def clip_starts(duration: float, *, fps: float, span: int, clips: int, draw: float | None = None) -> np.ndarray:
    """Start times (seconds) of ``clips`` clips covering ``span`` grid frames at ``fps``.

    With ``draw`` (a uniform number in [0, 1)) one clip at that relative position (training); otherwise
    ``clips`` uniformly spaced starts from the beginning to the end of the video (one clip: the middle one).
    Videos shorter than a clip start at 0 (their last frame repeats).
    """
    room = max(duration - span / fps, 0.0)
    if draw is not None:
        return np.array([draw * room])
    if clips == 1:
        return np.array([room / 2])
    return np.linspace(0.0, room, clips)


def clip_times(starts: np.ndarray, *, fps: float, frames: int, stride: int) -> np.ndarray:
    """``(clips, frames)`` grid times of clips starting at ``starts``."""
    return starts[:, None] + (np.arange(frames) * stride)[None, :] / fps
