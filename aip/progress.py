"""Progress bars: one policy for a terminal, a batch job's log file and a notebook.

Every bar of aip is :class:`tqdm` from here (tqdm's own ``tqdm.auto`` class with that policy applied):

- a terminal: tqdm as usual, redrawn in place;
- stderr not a terminal (a SLURM log, ``aip run ... 2> log``, a pipe): tqdm would append hundreds of ``\\r``
  redraws to the file; here a bar refreshes at most every ``AIP_PROGRESS_INTERVAL`` seconds (default 60) and
  each refresh is one line of its own, so a log reads as a short time series;
- ``AIP_PROGRESS=0`` (or ``off``/``false``/``no``) or tqdm's own ``TQDM_DISABLE=1``: no bars at all (set either in
  ``os.environ`` to silence ``aip.distil`` in a notebook); a notebook otherwise keeps tqdm's widgets.

aip keeps this small wrapper because tqdm has no line-per-refresh mode for files, and its ``TQDM_*`` variables
only change defaults that aip's call sites would override.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from tqdm import autonotebook, std
from tqdm.auto import tqdm as _auto

#: seconds between two refreshes of a bar whose output is not a terminal (``AIP_PROGRESS_INTERVAL``)
LOG_INTERVAL = 60.0
_OFF = {"0", "off", "false", "no"}


def enabled() -> bool:
    """Whether bars are drawn at all (``AIP_PROGRESS`` and ``TQDM_DISABLE``, read at each bar's start)."""
    if os.environ.get("AIP_PROGRESS", "").strip().lower() in _OFF:
        return False
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in ("", *_OFF)


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("AIP_PROGRESS_INTERVAL", LOG_INTERVAL)))
    except ValueError:
        return LOG_INTERVAL


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _Lines:
    """A file for tqdm that turns each in-place redraw (``\\r`` + text + padding) into one line of a log."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.encoding = getattr(stream, "encoding", None) or "utf-8"

    def write(self, text: str) -> int:
        line = text.replace("\r", "").replace("\x1b[A", "").strip()
        if line:
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


class tqdm(_auto):  # lower case: a drop-in for tqdm.auto.tqdm at aip's call sites
    """``tqdm.auto.tqdm`` with aip's policy (module docstring) applied to its arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._to_log = False
        if not enabled():
            kwargs["disable"] = True
        elif autonotebook.tqdm is std.tqdm:  # not a notebook widget: a text bar, to a terminal or not
            stream = kwargs.get("file") or sys.stderr
            if stream is not None and not _is_terminal(stream):
                self._to_log = True
                kwargs["file"] = _Lines(stream)
                kwargs["mininterval"] = _interval()
                kwargs["dynamic_ncols"] = False
                kwargs.setdefault("ncols", 100)
        super().__init__(*args, **kwargs)

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        """As tqdm's, except that in a log the new values wait for the next timed refresh (tqdm would draw at
        every call, a line per training step)."""
        super().set_postfix(ordered_dict, refresh=refresh and not self._to_log, **kwargs)
