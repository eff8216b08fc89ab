"""User-facing errors.

Every problem aip can name is raised as :class:`AipError` (or a subclass) with a one-line message that names the
problem and how to fix it. The CLI prints the message (``error: ...``) without a traceback and exits with the
error's :attr:`~AipError.exit_code`, click's and argparse's convention:

- 2, :class:`UsageError` (and :class:`RecipeError`): the command line or the recipe is wrong by itself, before
  anything runs: an unknown recipe key, name or option value, a path argument that does not exist or is the
  wrong kind of file, a folder aip refuses to write into. ``aip check`` finds most of them.
- 1, plain :class:`AipError`: a failure at run time with a valid command: a dataset that is missing or damaged,
  a damaged checkpoint, a loss that became NaN, a download that failed, a full disk, a missing optional package.

Library users catch :class:`AipError` for both, like any exception.
"""

from __future__ import annotations


class AipError(Exception):
    """A failure at run time that aip can name in one line (a missing dataset, a damaged file, a NaN loss)."""

    #: the CLI's exit status for it
    exit_code = 1


class UsageError(AipError):
    """The command line or the recipe is wrong by itself: an unknown name or value, a path that does not exist or
    is the wrong kind, a folder aip refuses to write into."""

    exit_code = 2


class RecipeError(UsageError):
    """A recipe key is unknown, has the wrong type, or has an impossible value."""


def one_line(error: BaseException) -> str:
    """The message of ``error`` as one line. torch's DataLoader re-raises an error from a worker process with the
    worker's whole traceback as its message ("Caught AipError in DataLoader worker process 0. Original
    Traceback ..."); its last line holds the original message."""
    text = str(error)
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    name, sep, rest = last.partition(": ")
    return rest if sep and name.split(".")[-1] == type(error).__name__ else last


#: what to do about an operating-system error on a path the user gave (or one aip writes under it)
_PATH_FIXES = {
    "ENAMETOOLONG": "shorten the path",
    "EACCES": "check its permissions, or choose another path",
    "EPERM": "check its permissions, or choose another path",
    "EROFS": "the file system is read-only; choose another path (--out, or AIP_CACHE for the cache)",
    "ENOSPC": "free disk space, or choose another disk (--out, or AIP_CACHE for the cache)",
    "EDQUOT": "free disk space, or choose another disk (--out, or AIP_CACHE for the cache)",
    "ENOTDIR": "a part of the path is a file, not a folder; check the path",
    "ELOOP": "symbolic links in the path form a loop; check the path",
}


def shown_path(path: object, limit: int = 120) -> str:
    """``path`` for a message: whole when short, else its start and end and its length."""
    s = str(path)
    return s if len(s) <= limit else f"{s[:80]}...{s[-20:]} ({len(s):,} characters)"


def path_error_line(error: OSError) -> str | None:
    """One line for an operating-system error on a path (a name too long, a permission denied, a full or
    read-only disk, ...) with what to do about it; None for any other error, which is a bug to report."""
    import errno

    name = errno.errorcode.get(error.errno or 0, "")
    if name not in _PATH_FIXES or error.filename is None:
        return None
    if name in ("ENOSPC", "EDQUOT"):
        return f"disk full while writing {shown_path(error.filename)}; {_PATH_FIXES[name]}"
    return f"{error.strerror or name}: {shown_path(error.filename)}; {_PATH_FIXES[name]}"


def path_error_code(error: OSError, arguments: list[str]) -> int:
    """The exit status for an operating-system error that :func:`path_error_line` named: 2 (usage) for a path
    argument that is plainly wrong (a name too long, a file where a folder must be) when the path is one of
    ``arguments`` or lies under one; 1 (a failure at run time) for the rest: a full disk, a permission denied,
    a read-only file system."""
    import errno
    import os

    if error.errno not in (errno.ENAMETOOLONG, errno.ENOTDIR) or error.filename is None:
        return 1
    path = os.path.normpath(os.fsdecode(error.filename))
    for a in arguments:
        given = os.path.normpath(a.split("=", 1)[-1]) if a else ""
        if given and given != "." and (path == given or path.startswith(given.rstrip(os.sep) + os.sep)):
            return 2
    return 1


def os_error_class(error: OSError) -> type[AipError]:
    """The class for a one-line error about ``error`` on a path the user named (``--out``, ``AIP_CACHE``):
    :class:`UsageError` where the path itself is wrong (a name too long, a file where a folder must be),
    :class:`AipError` where the system refuses at run time (no permission, a full or read-only disk)."""
    import errno

    return UsageError if error.errno in (errno.ENAMETOOLONG, errno.ENOTDIR) else AipError
