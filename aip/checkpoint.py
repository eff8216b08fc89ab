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
    if path.suffix == ".safetensors":  # timm's and Hugging Face's weight files: tensors only, no code
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, ValueError) as e:
            raise AipError(f"checkpoint {path} could not be read as safetensors ({str(e)[:120]}); it is corrupt "
                           "or not a safetensors file") from None
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


def classes_in(state: Mapping[str, Any]) -> int | None:
    """Output size of a classifier state dict: rows of its last 2-D weight (the final linear layer); None when
    it has none."""
    weights = [v for k, v in state.items() if k.endswith("weight") and getattr(v, "ndim", 0) == 2]
    return int(weights[-1].shape[0]) if weights else None


#: keys under which training code commonly stores the state dict in a checkpoint file (aip's own run checkpoints
#: use ``student``); :func:`state_dict_in` takes the first whose value is a dict of tensors
CONTAINER_KEYS = ("state_dict", "model_state_dict", "student", "model", "net", "module", "weights")


def state_dict_in(saved: Mapping[str, Any]) -> Mapping[str, Any]:
    """The state dict inside a loaded checkpoint: ``saved`` itself when it maps names to tensors, else the
    first entry of :data:`CONTAINER_KEYS` that does (``{"model": sd, "epoch": 3}``, Lightning's
    ``{"state_dict": sd, ...}``); ``saved`` when none does, for :func:`load_state` to report."""
    if saved and all(isinstance(v, torch.Tensor) for v in saved.values()):
        return saved
    for key in CONTAINER_KEYS:
        inner = saved.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner
    return saved


def _shared_prefixes(keys: list[str]) -> list[str]:
    """``""`` and each dotted prefix that every key starts with: ``module.`` (DataParallel), ``_orig_mod.``
    (torch.compile), ``model.`` (a Lightning module's attribute), and nested ones."""
    prefixes, prefix = [""], ""
    while keys and all(k.startswith(prefix) and "." in k[len(prefix):] for k in keys):
        heads = {k[len(prefix):].split(".", 1)[0] for k in keys}
        if len(heads) != 1:
            break
        prefix += heads.pop() + "."
        prefixes.append(prefix)
    return prefixes


def fit_keys(model: nn.Module, state: Mapping[str, Any]) -> Mapping[str, Any]:
    """``state`` renamed to ``model``'s keys when it is the state dict of the network inside ``model``, saved
    without aip's wrapper, or saved with a wrapper's prefix; ``state`` itself when it fits as it is or no
    renaming makes it fit (then :func:`load_state` names the keys that differ).

    Written here because no library does this mapping: a checkpoint saved from a bare ``resnet18`` has keys
    ``conv1.weight``, ..., while aip's teacher is ``Normalized(resnet18)`` with ``mean``, ``std`` and
    ``model.conv1.weight``, .... A renaming is taken only when every learned tensor and buffer of the sub-module
    it maps onto comes from ``state`` with the right shape; the entries outside that sub-module (the input
    normalisation, an audio front end's filter bank) keep the values the recipe built them with.
    """
    own = model.state_dict()
    if set(state) == set(own):
        return state
    keys = list(state)
    targets = [""] + sorted({k.split(".", 1)[0] + "." for k in own if "." in k})
    for strip in _shared_prefixes(keys):
        for add in targets:
            mapped = {add + k[len(strip):]: v for k, v in state.items()}
            if not set(mapped) <= set(own):
                continue
            covered = all(k in mapped or k.endswith("num_batches_tracked") for k in own if k.startswith(add))
            shapes = all(getattr(v, "shape", None) == own[k].shape for k, v in mapped.items())
            if covered and shapes:
                return {**own, **mapped}
    return state


def load_state(model: nn.Module, state: Any, *, what: str, fix: str) -> None:
    """``model.load_state_dict(state)`` (after :func:`fit_keys`), or a one-line :class:`AipError` naming ``what``
    (the file), the first missing and unexpected keys or mismatched shapes, and ``fix``."""
    if not isinstance(state, Mapping):
        raise AipError(f"{what} holds a {type(state).__name__}, not a state dict; {fix}")
    state = fit_keys(model, state)
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
