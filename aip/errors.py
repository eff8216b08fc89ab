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
