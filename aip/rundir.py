"""Run directories: one run owns its folder at a time, and a user's own files are never overwritten.

``aip run`` claims its ``--out`` folder before any work:

- **A lock** (``fcntl.flock`` on ``.aip-run`` inside the folder) is held for the whole run; the operating
  system releases it when the process ends, however it ends (``kill -9`` included), so a stale lock never
  blocks a later run. A second run into the same folder is refused with the holder's process id.
- **Ownership**: a folder that already holds files must hold a run of the same recipe (its ``.aip-run``
  marker or its ``last.pt`` carries the recipe's fingerprint), which is then resumed. Any other non-empty
  folder is refused unless ``force``; even then none of the files a run writes may already be there.
- **No links**: the marker is opened with ``O_NOFOLLOW`` and a symbolic link in place of any run file is
  refused, so a planted link cannot make a run write outside its folder. :class:`RunDir` names every file.
- **Clean failure**: if the run fails before it writes a checkpoint, the files and folders it created are
  removed again, so a failed run leaves no empty run directory behind (and nothing in a user's folder).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aip import checkpoint, files
from aip.errors import AipError, UsageError, os_error_class
from aip.recipe import Recipe

MARKER = ".aip-run"


class RunDir:
    """The one owner of a run folder's file names: everything that reads or writes a run's files asks this.

    ``aip run`` writes exactly :attr:`FILES` (and the lock :data:`MARKER`); a forced run into a user's folder is
    refused if any of them is already there, and none may be a symbolic link."""

    RECIPE = "recipe.toml"  # the resolved recipe
    METRICS = "metrics.json"  # the final report (aip.parts.metrics_of)
    LOG = "metrics.jsonl"  # one line per evaluation
    STEPS = "steps.jsonl"  # training scalars (aip.tracking)
    CURVES = "curves.png"
    CURVES_PDF = "curves.pdf"  # every figure has a PDF beside its PNG (aip.plot.save_figure)
    CONFUSION = "confusion.png"  # aip.inspect
    CONFUSION_PDF = "confusion.pdf"
    LAST = "last.pt"  # the resumable checkpoint
    BEST = "best.pt"  # the best evaluation's weights
    TB = "tb"  # TensorBoard events (train.log = ["tensorboard"]), a folder
    SCALARS_CSV = "scalars.csv"  # train.log = ["csv"] (aip.trackers)
    TRACKER_IDS = "trackers.json"  # the wandb and MLflow run ids, for a resume (aip.trackers)
    WANDB = "wandb"  # wandb's local files unless WANDB_DIR is set, a folder
    #: every file (and folder) a run writes into its folder, the lock marker aside
    FILES = (RECIPE, METRICS, LOG, STEPS, CURVES, CURVES_PDF, CONFUSION, CONFUSION_PDF, LAST, BEST, TB, SCALARS_CSV,
             TRACKER_IDS, WANDB)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def marker(self) -> Path:
        return self.path / MARKER

    @property
    def recipe(self) -> Path:
        return self.path / self.RECIPE

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def log(self) -> Path:
        return self.path / self.LOG

    @property
    def steps(self) -> Path:
        return self.path / self.STEPS

    @property
    def curves(self) -> Path:
        return self.path / self.CURVES

    @property
    def confusion(self) -> Path:
        return self.path / self.CONFUSION

    @property
    def last(self) -> Path:
        return self.path / self.LAST

    @property
    def best(self) -> Path:
        return self.path / self.BEST

    @property
    def tb(self) -> Path:
        return self.path / self.TB


#: the files a run writes into its folder (checked before a forced run into someone else's folder)
RUN_FILES = RunDir.FILES


def _fingerprint_of(path: Path) -> str | None:
    """The recipe fingerprint of the run in ``path``: from ``last.pt`` if any, else from the marker."""
    last = RunDir(path).last
    if last.exists():
        try:
            return str(checkpoint.load(last, mmap=True).get("fingerprint"))
        except AipError as e:
            raise AipError(f"{e}; delete {last} to start the run over, or pass --out NEW_DIR") from None
    try:
        fd = os.open(path / MARKER, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            return json.loads(f.read(4096) or b"{}").get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def _check_owner(path: Path, fingerprint: str, *, force: bool) -> None:
    """Refuse a folder that holds something other than a run of this recipe (see the module docstring)."""
    entries = [p for p in path.iterdir() if p.name != MARKER]
    found = _fingerprint_of(path)
    if found == fingerprint:
        return
    if found is not None:
        raise UsageError(f"{path} holds a run of a different recipe; pass --out NEW_DIR (or delete the folder)")
    if not entries:
        return
    if not force:
        raise UsageError(f"{path} is not empty and holds no run of this recipe; pass --out NEW_DIR, or --force to "
                         "write the run's files beside what is there")
    clash = [p.name for p in entries if p.name in RUN_FILES]
    if clash:
        raise UsageError(f"{path} already has {', '.join(clash)} that no run of this recipe wrote; move them away "
                         "or pass --out NEW_DIR")


def _lock(marker: Path, what: str = "aip run") -> int:
    """Open ``marker`` and take its exclusive lock; returns the open descriptor (the lock lives as long).
    ``what`` names the holder in the refusal (``aip run``, ``aip sweep``)."""
    while True:
        # O_NOFOLLOW: a marker planted as a symbolic link must not let the run truncate the link's target
        fd = os.open(marker, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = json.loads(os.read(fd, 4096) or b"{}").get("pid")
            except (ValueError, AttributeError):
                pid = None
            os.close(fd)
            holder = f"process {pid}" if pid else "another process"
            raise AipError(f"{marker.parent} is in use by another {what} ({holder}); wait for it to end, or pass "
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
def locked(folder: Path, *, marker: str, what: str) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder / marker`` for the block, the way a run holds its folder's (released
    by the operating system when the process ends, however it ends), recording this process's id for the
    refusal a second holder gets; ``folder`` is made if needed. Yields ``folder``.

    Raises :class:`AipError` when another process holds it (naming ``what`` and its process id)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = _lock(folder / marker, what)
    except OSError as e:
        raise AipError(f"{folder} cannot be locked for {what} ({e.strerror}); pass --out to a writable folder"
                       ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid()}).encode(), 0)
        yield folder
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def claimed(path: Path, *, fingerprint: str, force: bool = False) -> Iterator[Path]:
    """Own the run directory ``path`` for the block (see the module docstring); yields ``path``.

    Raises :class:`AipError` if another process holds it, it is not writable, or it holds something other
    than a run of the recipe with ``fingerprint`` (unless ``force``).
    """
    path = Path(path)
    created = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    marker = path / MARKER
    if path.exists() and not path.is_dir():  # mkdir would say only "File exists"
        raise UsageError(f"run directory {path} is a file, not a folder; pass --out a folder (a new one, or a run's)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        _refuse_links(path)
        had_marker = os.path.lexists(marker)
        fd = _lock(marker)
    except OSError as e:
        _remove_dirs(created)
        raise os_error_class(e)(f"run directory {path} is not writable ({e.strerror}); pass --out to a writable "
                                "folder") from None
    except AipError:
        _remove_dirs(created)
        raise
    before = {p.name for p in path.iterdir()}
    last_before = _identity(RunDir(path).last)
    try:
        _check_owner(path, fingerprint, force=force)
        record = json.dumps({"pid": os.getpid(), "fingerprint": fingerprint}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        yield path
    except BaseException:
        if _identity(RunDir(path).last) == last_before:  # no new checkpoint: remove what this run created
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


def _refuse_links(path: Path) -> None:
    """A run writes its files only as regular files inside its folder: a symbolic link in place of the marker
    or of any run file (which would redirect a write outside the folder) is refused before any work."""
    links = [name for name in (MARKER, *RunDir.FILES) if (path / name).is_symlink()]
    if links:
        raise UsageError(f"{path / links[0]} is a symbolic link; a run writes its files only inside its folder: "
                         "remove the link, or pass --out NEW_DIR")


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


#: in an output folder of ``aip preview`` or ``aip visualize``: the names of the files aip wrote there
OUTPUTS_MANIFEST = ".aip-outputs.json"


def _listed(folder: Path) -> set[str]:
    try:
        names = json.loads((folder / OUTPUTS_MANIFEST).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return set()
    return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()


def check_outputs(out: Path, names: list[str]) -> None:
    """Refuse, before any work, to write ``names`` into ``out`` where a same-named entry is there that aip did not
    write (not listed in ``out/.aip-outputs.json``, or a link, or not a regular file); see :func:`owned_outputs`."""
    out = Path(out)
    ours = _listed(out)
    for name in names:
        target = out / name
        if os.path.lexists(target) and (name not in ours or target.is_symlink() or not target.is_file()):
            raise UsageError(f"{target} is already there and aip did not write it; move it away, or pass --out "
                             "NEW_DIR (aip never replaces a file it did not write)")


@contextmanager
def owned_outputs(out: Path, *, prune: tuple[str, ...] = ()) -> Iterator[Path]:
    """Write a command's files into ``out`` without replacing any file aip did not write there.

    Yields a staging folder inside ``out``; write the files there. When the block ends, each is moved to
    ``out`` under its name, all or none: a same-named entry in ``out`` must be a regular file that aip wrote
    there before (listed in ``out/.aip-outputs.json``), otherwise nothing is moved and :class:`AipError` names
    it (:func:`check_outputs`). ``prune`` names files the command writes only at times (an export's
    ``model.onnx``): one of them that aip wrote before and did not write now is removed, so no stale output of
    an earlier call is left beside the new ones; nothing else is ever removed. The staging folder is removed
    however the block ends, and so are the folders it made when the block fails."""
    out = Path(out)
    created = [p for p in (out, *out.parents) if not os.path.lexists(p)]  # deepest first
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".aip-staging-", dir=out))
    except OSError as e:
        raise os_error_class(e)(f"output folder {out} could not be made ({e.strerror}); pass --out to a writable "
                                "folder") from None
    try:
        yield staging
        made = sorted(p.name for p in staging.iterdir())
        check_outputs(out, made)
        ours = _listed(out)
        stale = {n for n in set(prune) & (ours - set(made))
                 if not (out / n).is_symlink() and ((out / n).is_file() or not os.path.lexists(out / n))}
        files.write_text(json.dumps(sorted((ours - stale) | set(made))), out / OUTPUTS_MANIFEST)
        for name in made:
            os.replace(staging / name, out / name)
        for name in stale:
            (out / name).unlink(missing_ok=True)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_dirs(created)  # a failed command leaves no empty folder it made
        if isinstance(e, OSError):  # a full disk names no file (PIL, torchvision's save_image): name the folder
            raise files.named_error(e, out, temp=staging) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
