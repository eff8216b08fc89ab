"""User-facing errors.

Every problem caused by the user's input (a recipe, a file, a name) is raised as :class:`AipError` with a
one-line message that names the problem and how to fix it. The CLI prints the message and exits with code 2,
without a traceback; library users can catch it like any exception.
"""

from __future__ import annotations


class AipError(Exception):
    """A problem with the user's input: bad recipe, missing file, unknown name, mismatched shapes."""


class RecipeError(AipError):
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
    return f"{error.strerror or name}: {shown_path(error.filename)}; {_PATH_FIXES[name]}"
