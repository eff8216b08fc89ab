"""Where aip keeps what it downloads or trains once and reuses: ``$AIP_CACHE`` or ``~/.cache/aip``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str = "") -> Path:
    """The cache folder for ``kind`` (``"teachers"``, ``"sources"``, ``"datasets"``), created if missing."""
    root = Path(os.environ.get("AIP_CACHE") or Path.home() / ".cache" / "aip").expanduser()
    path = root / kind if kind else root
    path.mkdir(parents=True, exist_ok=True)
    return path
