"""Optional dependencies: one-line errors that name the ``pip install 'aip[EXTRA]'`` that provides them."""

from __future__ import annotations

import importlib.util

from aip.errors import AipError


def missing(*modules: str) -> list[str]:
    """Which of ``modules`` cannot be imported (looked up without importing them)."""
    out = []
    for m in modules:
        try:
            found = importlib.util.find_spec(m) is not None
        except (ImportError, ValueError):  # a parent package is missing, or the module was blocked
            found = False
        if not found:
            out.append(m)
    return out


def require(*modules: str, extra: str, what: str) -> None:
    """Raise ``AipError`` naming the extra when any of ``modules`` is not installed."""
    gone = missing(*modules)
    if gone:
        raise AipError(f"{what} needs {', '.join(gone)}, which is not installed; pip install 'aip[{extra}]'")
