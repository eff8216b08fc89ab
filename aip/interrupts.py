"""Stopping a run cleanly: SIGINT (Ctrl-C) and SIGTERM (a cluster's time limit) end it at a step boundary.

While :func:`deferred_stops` is active, the first of those signals only sets a flag; the training loop checks
it after each step, saves a checkpoint consistent with that step boundary and raises :class:`Interrupted`, so
the same command resumes exactly where the run stopped. A second signal stops at once (``KeyboardInterrupt``)
and leaves the last checkpoint in place.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """The run stopped at ``step`` on signal ``signum``; its checkpoint is consistent with that step."""

    def __init__(self, step: int, signum: int) -> None:
        super().__init__(f"interrupted at step {step}; run the same command to resume")
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

    def handler(signum: int, frame: object) -> None:  # noqa: ARG001
        if request:  # asked twice: stop now
            raise KeyboardInterrupt
        request.signum = signum

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
