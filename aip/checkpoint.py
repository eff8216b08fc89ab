"""Checkpoints: written atomically (:mod:`aip.files`), read back safely, with one-line errors.

Reading never runs code from a file: ``torch.load`` is called with ``weights_only=True``, which unpickles
tensors, plain values (numbers, strings, lists, dicts) and optimiser/scheduler states only, so a file whose
unpickling would call a function is refused before anything in it runs. aip's own checkpoints hold nothing
else (RNG states are tensors), so they resume exactly. Cached teachers are safetensors files
(:func:`save_weights`), which hold tensors and a JSON header and no code at all.
"""

from __future__ import annotations

import errno
import json
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aip import files
from aip.errors import AipError


def _write_failed(e: OSError, path: Path) -> AipError:
    """The one-line error for a write that failed; the previous file at ``path`` is intact (atomic write)."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return AipError(f"no space left on device writing {path}; free space and run the same command to resume")
    return AipError(f"could not write {path} ({e.strerror or e}); check the folder, then run the same command "
                    "to resume")


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically (:func:`aip.files.save_torch`).

    A failed write (a full disk, a vanished folder) raises a one-line :class:`AipError` naming the file, and
    leaves the previous file at ``path`` as it was."""
    try:
        files.save_torch(obj, path)
    except OSError as e:
        raise _write_failed(e, path) from None


def write_text_atomic(text: str, path: Path) -> None:
    try:
        files.write_text(text, path)
    except OSError as e:
        raise _write_failed(e, path) from None


def load(path: Path, *, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint (a dict) without running code from it: tensors and plain values only.

    ``mmap``: map the tensors' storage from the file instead of reading it (cheap when only a few entries
    are looked at). Raises :class:`AipError` for a missing, corrupt or unsafe file, or one that is not a dict.
    """
    path = Path(path)
    if path.is_dir():
        raise AipError(f"checkpoint {path} is a directory; give the checkpoint file inside it")
    if not path.is_file():
        raise AipError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # e.g. about a pickle protocol: the outcome is reported in one line below
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(e))
        if unsafe:  # a class or function to import and call: refused before it is called
            raise AipError(f"checkpoint {path} holds objects other than tensors and plain values (it would call "
                           f"{unsafe.group(1)}); aip loads only state dicts and does not run code from files: save "
                           "model.state_dict() instead, from a source you trust") from None
        raise AipError(f"checkpoint {path} could not be read (not a pickle of tensors and plain values); it is "
                       "corrupt or not a PyTorch checkpoint") from None
    except Exception as e:  # truncated, empty, or not a torch file at all
        raise AipError(f"checkpoint {path} could not be read ({type(e).__name__}); it is corrupt or not a PyTorch "
                       "checkpoint") from None
    if not isinstance(state, dict):
        raise AipError(f"checkpoint {path} holds a {type(state).__name__}, not a dict of tensors; save "
                       "model.state_dict() instead")
    return state


def save_weights(state: Mapping[str, torch.Tensor], meta: dict[str, Any], path: Path) -> None:
    """Write a state dict and JSON-able ``meta`` to one safetensors file at ``path``, atomically."""
    from safetensors.torch import save

    # clones drop shared storage (safetensors refuses tensors that alias one another) and channels-last strides
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in state.items()}
    data = save(tensors, metadata={"aip": json.dumps(meta)})
    try:
        files.write_bytes(data, path)
    except OSError as e:
        raise _write_failed(e, path) from None


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict and metadata written by :func:`save_weights` (no code can run: safetensors is data)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("aip", "{}"))
        return load_file(str(path)), meta
    except (SafetensorError, OSError, ValueError) as e:
        raise AipError(f"{path} could not be read ({type(e).__name__}: {str(e)[:120]}); delete it and it is "
                       "made again") from None


def load_state(model: nn.Module, state: Any, *, what: str, fix: str) -> None:
    """``model.load_state_dict(state)``, or a one-line :class:`AipError` naming ``what`` (the file), the first
    missing and unexpected keys or mismatched shapes, and ``fix``."""
    if not isinstance(state, Mapping):
        raise AipError(f"{what} holds a {type(state).__name__}, not a state dict; {fix}")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} is {tuple(state[k].shape)} here, {tuple(own[k].shape)} in the model" for k in own
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]

    def first(names: list[str]) -> str:
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        return ", ".join(names[:3]) + more

    problems = []
    if missing:
        problems.append(f"missing keys {first(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {first(unexpected)}")
    if shapes:
        problems.append(f"shape of {first(shapes)}")
    if not problems:
        try:
            model.load_state_dict(state)
            return
        except (RuntimeError, TypeError) as e:
            problems.append(str(e).strip().splitlines()[0])
    raise AipError(f"{what} does not fit the model ({'; '.join(problems)}); {fix}")


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
