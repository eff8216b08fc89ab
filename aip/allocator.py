"""Keep freed memory in the process between training steps (glibc's malloc only).

A step frees and re-allocates the same large buffers (activations, gradients, augmented batches). By default
glibc serves blocks over 128 KiB-32 MiB with ``mmap`` and returns them to the kernel when freed, so every
step maps them again and touches every page anew: a stream of ``munmap`` calls and minor page faults, paid in
kernel time (docs/benchmarks.md has the figures). :func:`keep_freed_memory` raises the thresholds with
``mallopt`` (the same as setting ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` and
``MALLOC_TOP_PAD_``), so freed blocks stay in the heap and are reused. Written by hand with ctypes because no
maintained package sets glibc's tunables from inside a running process.
"""

from __future__ import annotations

import ctypes
import os
import platform

#: mallopt parameter numbers from glibc's malloc.h
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = {M_MMAP_THRESHOLD: 32 * 2**20, M_TRIM_THRESHOLD: 4 * 2**30, M_TOP_PAD: 256 * 2**20}
ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def keep_freed_memory() -> bool:
    """Apply :data:`SETTINGS` on Linux with glibc; return whether they were applied.

    Skipped when ``AIP_MALLOC=default`` or when the user set any of glibc's own ``MALLOC_*_`` variables
    (theirs win), and on other C libraries and systems.
    """
    if os.environ.get("AIP_MALLOC", "") == "default" or any(k in os.environ for k in ENV):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return all(libc.mallopt(param, value) == 1 for param, value in SETTINGS.items())
