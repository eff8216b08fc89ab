"""Checkpoints: written atomically (:mod:`aip.files`), read back with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from aip import files
from aip.errors import AipError


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically (:func:`aip.files.save_torch`)."""
    files.save_torch(obj, path)


def write_text_atomic(text: str, path: Path) -> None:
    files.write_text(text, path)


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by aip (``weights_only=False``: it also holds RNG states and the recipe)."""
    if not path.is_file():
        raise AipError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated or foreign file
        raise AipError(f"checkpoint {path} could not be read ({type(e).__name__}); is it an aip checkpoint?") from None


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
