"""Where aip keeps what it downloads or trains once and reuses: ``$AIP_CACHE`` or ``~/.cache/aip``."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from collections.abc import Callable
from pathlib import Path

from aip.errors import AipError, UsageError, os_error_class
from aip.files import atomic_dir, atomic_path, regular_file


def cache_dir(kind: str = "") -> Path:
    """The cache folder for ``kind`` (``"teachers"``, ``"sources"``, ``"datasets"``), created if missing."""
    root = Path(os.environ.get("AIP_CACHE") or Path.home() / ".cache" / "aip").expanduser()
    path = root / kind if kind else root
    named = "AIP_CACHE" if os.environ.get("AIP_CACHE") else "the cache folder"
    if root.exists() and not root.is_dir():
        raise UsageError(f"{named} {root} is a file, not a folder; set AIP_CACHE to a folder (or unset it to use "
                         "~/.cache/aip)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise os_error_class(e)(f"{named} {root} is not writable ({e.strerror}: {path}); set AIP_CACHE to a folder "
                                "you can write to") from None
    return path


def download_path(url: str, *, kind: str = "sources") -> Path:
    """Where :func:`download` keeps ``url`` (the file may not exist yet: ``aip check`` asks whether it does)."""
    name = Path(url.split("?")[0]).name or "download"
    return cache_dir(kind) / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"


def download(url: str, *, kind: str = "sources", timeout: float = 60.0) -> Path:
    """Download ``url`` once into ``cache_dir(kind)`` and return the local file (reused on later calls).

    The file is written atomically (:func:`aip.files.atomic_path`), so an interrupted download is never
    mistaken for a finished one.
    """
    target = download_path(url, kind=kind)
    if target.is_file():
        return target
    try:
        with atomic_path(target) as tmp, urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
    except (OSError, ValueError) as e:
        raise AipError(f"could not download {url} ({e}); check the URL, or download it and give the file path") \
            from None
    return target


def dataset_root(root: str, name: str = "") -> Path:
    """Where a dataset lives: the recipe's ``eval.root`` if set, else ``cache_dir("datasets")`` (``/ name``
    when given, for modalities that keep one folder per dataset)."""
    if root:
        return Path(root).expanduser()
    base = cache_dir("datasets")
    return base / name if name else base


def local_file(uri: str, *, what: str, accepts: str) -> Path:
    """``uri`` as a path to an existing regular file (:func:`aip.files.regular_file`), or a one-line error that
    says what it is instead (missing, a directory, a FIFO, a device, ...). ``what`` names it in the message
    (``"source image"``), ``accepts`` lists what ``source.uri`` may be instead."""
    return regular_file(uri, what=what, fix=f"set source.uri to {accepts}")


def synthetic_set(root: Path, name: str, *, version: int, params: tuple[object, ...],
                  complete: Callable[[Path], bool], write: Callable[[Path], None]) -> Path:
    """Build a synthetic dataset once into ``root/NAME-vVERSION-HASH`` and return that folder.

    ``HASH`` names ``version`` and the builder's ``params`` (the first 8 hex digits of the SHA-256 of their
    ``repr``), so other arguments, or a new ``version`` of the generator, build a new folder beside the old one.
    ``complete(folder)`` says whether a built set is there (a file or folder that is written last); if not,
    ``write(part)`` fills an empty temporary folder that takes the set's name only when it returns
    (:func:`aip.files.atomic_dir`), so an interrupted build is never mistaken for a finished one.
    """
    key = hashlib.sha256(repr((version, *params)).encode()).hexdigest()[:8]
    folder = Path(root) / f"{name}-v{version}-{key}"
    if complete(folder):
        return folder
    with atomic_dir(folder) as part:
        write(part)
    return folder
