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
import math
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aip import files
from aip.errors import AipError, UsageError


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
    """Write ``text`` to ``path`` atomically (:func:`aip.files.write_text`), with the one-line errors of
    :func:`save_atomic`."""
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
        raise UsageError(f"checkpoint {path} is a directory; give the checkpoint file inside it")
    if not path.is_file():
        if os.path.lexists(path):
            raise UsageError(f"checkpoint {path} is {files.describe(path)}, not a file; give a checkpoint file")
        raise UsageError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":  # timm's and Hugging Face's weight files: tensors only, no code
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, ValueError) as e:
            raise AipError(f"checkpoint {path} could not be read as safetensors ({str(e)[:120]}); it is corrupt "
                           "or not a safetensors file") from None
    check_crc(path)
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


def check_crc(path: Path) -> None:
    """Refuse a torch zip checkpoint whose bytes changed after it was written (a flipped bit on disk, a bad
    copy): ``torch.load`` reads the records without checking their CRC-32, so the damage would reach the
    weights unnoticed. :meth:`zipfile.ZipFile.testzip` reads every record and checks its CRC. It reads the whole
    file once: 0.11 s for a 307 MB ResNet-50 checkpoint (weights and AdamW state), against 0.23 s for the
    ``torch.load`` that follows (file in the page cache; measured 2026-12-07 on the 2-core AMD EPYC with AVX-512,
    other test runs on the machine). Files that are not zip
    archives (torch's legacy format) are left to ``torch.load``."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise AipError(f"checkpoint {path} is corrupt ({type(e).__name__}: {str(e)[:80]}); it cannot be used: "
                       "restore it from a copy, or delete it (a run then starts over)") from None
    if bad is not None:
        raise AipError(f"checkpoint {path} is corrupt: record {bad} fails its CRC check (its bytes changed after it "
                       "was written); restore it from a copy, or delete it (a run then starts over)")


def check_finite(state: Mapping[str, Any], *, what: str) -> None:
    """Refuse weights holding NaN or infinity (a diverged run, a damaged file): their predictions and
    accuracies would be meaningless numbers. Raises a one-line :class:`AipError` naming the first bad tensor."""
    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel()
           and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise AipError(f"{what} holds NaN or infinite weights (in {bad[0]}{more}); it cannot predict: use another "
                       "checkpoint (best.pt, last.pt), or train again with a lower train.lr")


def check_run_checkpoint(saved: Mapping[str, Any], *, path: Path, model: nn.Module, world: int,
                         fix: str) -> None:
    """Check a run's ``last.pt`` has what a resume reads, before anything is restored from it: a ``student``
    state dict of ``model``'s keys and shapes, optimiser and scheduler states, and one RNG state per process.
    A checkpoint of an older aip whose model changed, or one edited by hand, gets one line naming what is wrong
    and ``fix``, instead of a traceback from deep inside ``load_state_dict``."""
    student = saved.get("student")
    if not isinstance(student, Mapping) or not student:
        raise AipError(f"{path} has no student weights; {fix}")
    own = model.state_dict()
    missing = [k for k in own if k not in student]
    extra = [k for k in student if k not in own]
    shapes = [k for k in own if k in student and getattr(student[k], "shape", None) != own[k].shape]
    if missing or extra or shapes:
        what = (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}" if extra
                else f"{shapes[0]} is {tuple(getattr(student[shapes[0]], 'shape', ()))}, "
                     f"{tuple(own[shapes[0]].shape)} in the model")
        raise AipError(f"{path} does not fit the recipe's student ({what}); {fix}")
    for key in ("optimizer", "scheduler"):
        if not isinstance(saved.get(key), Mapping):
            raise AipError(f"{path} has no {key} state; {fix}")
    rngs = saved.get("rng_per_rank", [saved.get("rng")] if "rng" in saved else None)
    if not isinstance(rngs, list) or len(rngs) < world or not all(
            isinstance(r, Mapping) and isinstance(r.get("torch"), torch.Tensor) and r["torch"].dtype == torch.uint8
            and r["torch"].numel() > 0 for r in rngs[:world]):
        raise AipError(f"{path} has no valid random-number state for {world} process(es); {fix}")
    state = saved.get("state", {})
    step = state.get("step", 0) if isinstance(state, Mapping) else None
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise AipError(f"{path} has no valid step count; {fix}")
    best = state.get("best", {}) if isinstance(state, Mapping) else {}
    if not isinstance(best, Mapping) or not isinstance(best.get("top1", -1.0), int | float) or (
            isinstance(best.get("top1"), float) and math.isnan(best["top1"])):
        raise AipError(f"{path} has no valid best accuracy; {fix}")


def usable_best(path: Path, model: nn.Module) -> str | None:
    """What is wrong with a run's ``best.pt`` (unreadable, corrupt, not the student's weights, not finite), or
    None when it is usable. A resume checks it so that a damaged best.pt does not outlive a run that exits 0."""
    if not path.is_file() or path.is_symlink():
        return "it is missing" if not os.path.lexists(path) else f"it is {files.describe(path)}"
    try:
        saved = load(path, mmap=True)
        student = saved.get("student")
        if not isinstance(student, Mapping):
            return "it holds no student weights"
        own = model.state_dict()
        if set(student) != set(own) or any(getattr(student[k], "shape", None) != own[k].shape for k in own):
            return "its weights do not fit the recipe's student"
        check_finite(student, what=str(path))
    except AipError as e:
        return str(e)
    return None


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
