"""Run directories: one run owns its folder at a time, and a user's own files are never overwritten.

``aip run`` claims its ``--out`` folder before any work:

- **A lock** (``fcntl.flock`` on ``.aip-run`` inside the folder) is held for the whole run; the operating
  system releases it when the process ends, however it ends (``kill -9`` included), so a stale lock never
  blocks a later run. A second run into the same folder is refused with the holder's process id.
- **Ownership**: a folder that already holds files must hold a run of the same recipe (its ``.aip-run``
  marker or its ``last.pt`` carries the recipe's fingerprint), which is then resumed. Any other non-empty
  folder is refused unless ``force``; even then none of the files a run writes may already be there.
- **Clean failure**: if the run fails before it writes a checkpoint, the files and folders it created are
  removed again, so a failed run leaves no empty run directory behind (and nothing in a user's folder).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aip import checkpoint
from aip.errors import AipError
from aip.recipe import Recipe

MARKER = ".aip-run"
#: the files a run writes into its folder (checked before a forced run into someone else's folder)
RUN_FILES = ("recipe.toml", "metrics.json", "metrics.jsonl", "curves.png", "last.pt", "best.pt")


def _fingerprint_of(path: Path) -> str | None:
    """The recipe fingerprint of the run in ``path``: from ``last.pt`` if any, else from the marker."""
    last = path / "last.pt"
    if last.exists():
        try:
            return str(checkpoint.load(last, mmap=True).get("fingerprint"))
        except AipError as e:
            raise AipError(f"{e}; delete {last} to start the run over, or pass --out NEW_DIR") from None
    try:
        return json.loads((path / MARKER).read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def _check_owner(path: Path, fingerprint: str, *, force: bool) -> None:
    """Refuse a folder that holds something other than a run of this recipe (see the module docstring)."""
    entries = [p for p in path.iterdir() if p.name != MARKER]
    found = _fingerprint_of(path)
    if found == fingerprint:
        return
    if found is not None:
        raise AipError(f"{path} holds a run of a different recipe; pass --out NEW_DIR (or delete the folder)")
    if not entries:
        return
    if not force:
        raise AipError(f"{path} is not empty and holds no run of this recipe; pass --out NEW_DIR, or --force to "
                       "write the run's files beside what is there")
    clash = [p.name for p in entries if p.name in RUN_FILES]
    if clash:
        raise AipError(f"{path} already has {', '.join(clash)} that no run of this recipe wrote; move them away "
                       "or pass --out NEW_DIR")


def _lock(marker: Path) -> int:
    """Open ``marker`` and take its exclusive lock; returns the open descriptor (the lock lives as long)."""
    while True:
        fd = os.open(marker, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = json.loads(os.read(fd, 4096) or b"{}").get("pid")
            except (ValueError, AttributeError):
                pid = None
            os.close(fd)
            holder = f"process {pid}" if pid else "another process"
            raise AipError(f"{marker.parent} is in use by another aip run ({holder}); wait for it to end, or pass "
                           "--out NEW_DIR") from None
        except BaseException:
            os.close(fd)
            raise
        # the file may have been removed (a failed run cleaning up) between open and lock: lock the new one
        try:
            same = os.fstat(fd).st_ino == os.stat(marker).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextmanager
def claimed(path: Path, *, fingerprint: str, force: bool = False) -> Iterator[Path]:
    """Own the run directory ``path`` for the block (see the module docstring); yields ``path``.

    Raises :class:`AipError` if another process holds it, it is not writable, or it holds something other
    than a run of the recipe with ``fingerprint`` (unless ``force``).
    """
    path = Path(path)
    created = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    marker = path / MARKER
    try:
        path.mkdir(parents=True, exist_ok=True)
        had_marker = marker.exists()
        fd = _lock(marker)
    except OSError as e:
        _remove_dirs(created)
        raise AipError(f"run directory {path} is not writable ({e.strerror}); pass --out to a writable "
                       "folder") from None
    except AipError:
        _remove_dirs(created)
        raise
    before = {p.name for p in path.iterdir()}
    last_before = _identity(path / "last.pt")
    try:
        _check_owner(path, fingerprint, force=force)
        record = json.dumps({"pid": os.getpid(), "fingerprint": fingerprint}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        yield path
    except BaseException:
        if _identity(path / "last.pt") == last_before:  # no new checkpoint: remove what this run created
            for name in {p.name for p in path.iterdir()} - before:
                new = path / name
                if new.is_dir() and not new.is_symlink():
                    shutil.rmtree(new)
                else:
                    new.unlink(missing_ok=True)
            if not had_marker:
                marker.unlink(missing_ok=True)
            _remove_dirs(created)
        raise
    finally:
        os.close(fd)  # releases the lock


def _identity(path: Path) -> tuple[int, int] | None:
    """``(inode, mtime)`` of ``path``: it changes when a checkpoint is written (atomically, by a rename)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def _remove_dirs(created: list[Path]) -> None:
    """Remove the folders in ``created`` (deepest first) that are empty."""
    for d in created:
        try:
            d.rmdir()
        except OSError:
            return


def fingerprint(recipe: Recipe) -> str:
    """The identity of a run: every recipe section that changes what is trained (not ``eval`` or the name)."""
    return recipe.fingerprint("modality", "source", "augment", "teacher", "student", "loss", "train")
