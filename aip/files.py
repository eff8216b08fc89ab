"""Atomic files: a crash, a kill or a full disk never leaves a half-written file in place of a good one.

Every file aip writes (checkpoints, metrics, cached teachers, downloads, exports, reports, figures, generated
datasets) goes through :func:`atomic_path`, the one writer: the content is written to a temporary name in the
same folder, flushed to disk, then renamed over the target in one step (``os.replace``), so readers see either
the old file or the new one. Folders built piece by piece use :func:`atomic_dir` the same way.

The writer never writes through a symbolic link: a destination that is a link (to a file, a folder or
nothing) is refused with one line, as is a destination under a path component that is a file
(``afile/sub``), so a link planted in an output folder cannot redirect a write outside it. A kill during a
write leaves only a temporary file of aip's naming (``.NAME.<8 random characters>.tmp``); :func:`remove_stale_temps`
deletes those the next time a run uses the folder.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aip.errors import AipError, UsageError, os_error_class, shown_path

#: aip's temporary names: ``.`` + the target's name + ``.`` + mkstemp's 8 random characters + a suffix + ``.tmp``
_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(?:\.[A-Za-z0-9]+)?\.tmp$")


def refuse_link(path: Path, *, named: str = "", fix: str = "choose another path") -> None:
    """A destination that is a symbolic link is one line (``named``, default the path, then ``fix``): aip never
    writes through links."""
    if Path(path).is_symlink():
        raise UsageError(f"{named or shown_path(path)} is a symbolic link; aip never writes through links (a link "
                         f"could point anywhere): remove the link, or {fix}")


def check_writable(path: Path) -> None:
    """Refuse a destination aip must not write: a symbolic link, an existing folder, or a path under a
    component that is a file. Raises a one-line :class:`AipError` naming the path and the fix."""
    path = Path(path)
    refuse_link(path)
    for parent in path.parents:  # the deepest existing component must be a folder
        if parent.is_dir():
            break
        if os.path.lexists(parent):
            raise UsageError(f"{shown_path(parent)} is a file, not a folder, so {shown_path(path)} cannot be written; "
                             "choose another path")
    if path.is_dir():
        raise UsageError(f"{shown_path(path)} is a folder, not a file; move it away, or choose another path")
    if path.exists() and not path.is_file():
        raise UsageError(f"{shown_path(path)} is {describe(path)}, not a regular file; choose another path")


def describe(path: Path) -> str:
    """What ``path`` is, in words: 'a folder', 'a named pipe (FIFO)', 'a character device', ..., for messages
    about a path that exists but is not what was wanted (``/dev/zero`` given as a file)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "a broken symbolic link" if os.path.islink(path) else "missing"
    for test, words in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return words
    return "not a regular file"


def regular_file(path: str | Path, *, what: str, fix: str) -> Path:
    """``path`` (``~`` expanded) if it is a regular file this process may read, else a one-line
    :class:`UsageError` saying what it is instead: missing, a folder, a named pipe (FIFO), a device
    (``/dev/zero``), a socket, a broken symbolic link, or unreadable. ``what`` names the file in the message
    (``"source image"``), ``fix`` says what to give instead. It only looks (``os.stat``, which follows links):
    nothing is opened, so a FIFO does not block the caller waiting for a writer. Every reader of a user's file
    (the sources and inputs of each modality) asks this first."""
    p = Path(path).expanduser()
    shown = shown_path(p)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        if os.path.islink(p):
            raise UsageError(f"{what} {shown} is a broken symbolic link (to {shown_path(os.readlink(p))}); "
                             f"{fix}") from None
        raise UsageError(f"{what} {shown} does not exist; {fix}") from None
    except OSError as e:  # a name too long, a parent that is a file (usage); a permission denied, a loop (run time)
        raise os_error_class(e)(f"{what} {shown} cannot be opened ({e.strerror or type(e).__name__}); {fix}") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{what} {shown} is a directory, not a file; {fix}")
    if not stat.S_ISREG(mode):
        raise UsageError(f"{what} {shown} is not a regular file but {describe(p)}; {fix}")
    if not os.access(p, os.R_OK):
        raise AipError(f"{what} {shown} cannot be read (permission denied); check its permissions, or {fix}")
    return p


def remove_stale_temps(folder: Path, names: Iterable[str] | None = None) -> list[Path]:
    """Delete the temporary files of aip's naming that a kill during a write left in ``folder`` (only regular
    files, never links; only those of targets in ``names`` when given). Call it only where no other aip process
    writes into ``folder`` at the time (a run folder under its lock). Returns the files removed."""
    wanted = set(names) if names is not None else None
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TEMP.match(e.name)
        if not m or (wanted is not None and m.group("name") not in wanted):
            continue
        if e.is_file(follow_symlinks=False):
            try:
                os.unlink(e.path)
                removed.append(Path(e.path))
            except OSError:
                pass
    return removed


@contextmanager
def atomic_path(path: Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error it is renamed to ``path``.

    ``suffix`` keeps the extension tools look at (``.wav``) on the temporary name. On an error the temporary
    file is removed and ``path`` is left as it was. A ``path`` that is a symbolic link, a folder or lies under a
    file is refused (:func:`check_writable`).
    """
    path = Path(path)
    check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f"{suffix}.tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # the data reaches the disk before the rename makes it visible
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes the file private; give it a plain file's mode
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise named_error(e, path, temp=tmp) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: errors of a write that name no file (a full disk, a quota, a failing device): the target is named for them
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS}


def named_error(error: OSError, path: Path, *, temp: Path | None = None) -> OSError:
    """``error`` naming ``path``, the file or folder the user knows, where it named nothing (a full disk raises
    without a name) or ``temp``, the temporary name it was written under (a file, or a staging folder: a file in
    it is named under ``path``), so the CLI says in one line which file could not be written."""
    named = Path(os.fsdecode(error.filename)) if error.filename is not None else None
    if named is None:
        target = path if error.errno in _WRITE_ERRNOS else None
    elif temp is not None and (named == temp or temp in named.parents):
        target = path / named.relative_to(temp) if named != temp else path
    else:
        target = None
    if target is None:
        return error
    return OSError(error.errno, error.strerror, str(target))  # the subclass of the errno, as open() raises


#: torch's zip writer replaces a failed write by a RuntimeError naming its stream, not the file or the cause
_TORCH_WRITE_FAILED = ("PytorchStreamWriter failed writing", "unexpected pos")


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``, renamed to ``path`` when the block succeeds."""
    path = Path(path)
    refuse_link(path)
    check_writable(path / "x")  # no component of the path is a file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes the folder private; give it a plain folder's mode
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def umask() -> int:
    """The process's umask (the bits a new file's or folder's mode leaves out), read without changing it."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


class _Sink:
    """A file's ``write``/``flush`` that keeps the ``OSError`` a write raised: torch's zip writer replaces it with
    an opaque ``RuntimeError`` ("unexpected pos ..."), and a full disk must be reported as one."""

    def __init__(self, f: Any) -> None:
        self.f, self.error = f, None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically; a failed write (e.g. a full disk) raises its ``OSError``."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        sink = _Sink(f)
        try:
            torch.save(obj, sink)
        except RuntimeError as e:
            if sink.error is not None:
                raise sink.error from None
            if any(s in str(e) for s in _TORCH_WRITE_FAILED):  # no OSError kept: a write torch made itself
                raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (or the disk failed; PyTorch: "
                              f"{str(e).splitlines()[0][:120]})") from None
            raise
