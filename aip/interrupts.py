"""Stopping a run cleanly: SIGINT (Ctrl-C) and SIGTERM (a cluster's time limit) end it at a step boundary.

While :func:`deferred_stops` is active (the distillation loop, the teacher's training loop), the first of those
signals only sets a flag; the loop checks it after each step, saves a checkpoint consistent with that step
boundary and raises :class:`Interrupted`, so the same command resumes exactly where it stopped. A second signal
stops at once (``KeyboardInterrupt``) and leaves the last checkpoint in place.

Outside those loops (loading data, evaluating, exporting) :func:`stop_at_once` handles both signals alike: it
raises ``KeyboardInterrupt``, so the code running unwinds, removing its temporary files, and the CLI prints one
line and exits with 128 + the signal's number (:func:`exit_code`). ``aip.cli.main`` installs it for SIGTERM, whose
default would kill the process at once, with no message and no clean-up, and for SIGINT, to know which came.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: the last signal that stopped this process at once (0: none); typer turns a ``KeyboardInterrupt`` into exit
#: code 130 whatever the signal was, so the CLI reads it here
received = 0


def stop_at_once(signum: int, frame: object = None) -> None:  # noqa: ARG001 - a signal handler's signature
    """A signal handler: remember ``signum`` and raise ``KeyboardInterrupt`` (Python's own SIGINT behaviour)."""
    global received
    received = signum
    raise KeyboardInterrupt


def install() -> dict[int, Any]:
    """Make SIGINT and SIGTERM stop the process by :func:`stop_at_once` (main thread only; a no-op elsewhere).
    Returns the handlers it replaced, for :func:`restore`."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, stop_at_once) for s in SIGNALS}


def restore(previous: dict[int, Any]) -> None:
    """Put back the handlers :func:`install` replaced (a caller of ``aip.cli.main`` in its own process)."""
    for s, h in previous.items():
        signal.signal(s, h)


def exit_code() -> int:
    """The exit status of a process stopped at once: 128 + the signal's number (130 for SIGINT, also when
    Python's own handler raised, 143 for SIGTERM)."""
    return 128 + (received or signal.SIGINT)


class Interrupted(Exception):
    """The run stopped at ``step`` on signal ``signum``; its checkpoint is consistent with that step. ``during``
    names what was stopped when it is not the distillation (``"during teacher training"``)."""

    def __init__(self, step: int, signum: int, during: str = "") -> None:
        super().__init__(f"interrupted {during + ' ' if during else ''}at step {step}; run the same command to resume")
        self.step, self.signum = step, signum

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


@dataclass
class StopRequest:
    signum: int = 0

    def __bool__(self) -> bool:
        return self.signum != 0


@contextmanager
def deferred_stops() -> Iterator[StopRequest]:
    """Turn SIGINT/SIGTERM into a :class:`StopRequest` for the duration of the block (main thread only;
    elsewhere signals keep their handlers and the request never fires)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: object) -> None:
        if request:  # asked twice: stop now
            stop_at_once(signum, frame)
        request.signum = signum

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
