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
