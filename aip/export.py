"""``aip export``: a distilled student as a self-contained folder, in the Hugging Face layout.

The folder holds ``model.safetensors`` (always), the traced model for the chosen ``format`` (``model.onnx``,
``model.ts`` for TorchScript, ``model.pt2`` for a ``torch.export`` ExportedProgram), ``config.json``
(modality, architecture and kwargs, class names, the input the model takes, the resolved recipe, measured
accuracy, and the fields timm and Hugging Face read: :mod:`aip.card`) and a ``README.md`` Hugging Face model
card. The model inside takes views as :meth:`Student.input_spec` describes them (batch first) and returns
logits; it normalises its input itself. An ONNX file is checked against the PyTorch student with onnxruntime
before the folder is written (as optimum does). :func:`aip.hub.push_to_hub` uploads the folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aip import __version__, files, rundir
from aip.card import ecosystem_fields, model_card, portable
from aip.errors import AipError, UsageError
from aip.student import CONFIG, WEIGHTS, Student, load_student

CARD = "README.md"  # the Hugging Face model card
FORMATS = {"safetensors": None, "onnx": "model.onnx", "torchscript": "model.ts", "exported-program": "model.pt2"}
#: an ONNX file passes when ``|onnx - torch| <= ONNX_ATOL + ONNX_RTOL * |torch|`` on every logit of the sample
#: batch (numpy's ``allclose``); float32 kernels reorder sums, so bit equality is not expected. optimum checks
#: with atol 1e-5 by default and per-model values up to 1e-3; logits of aip's small networks reach ~1e1, where
#: float32 reordering alone gives differences of ~1e-5.
ONNX_ATOL, ONNX_RTOL = 1e-4, 1e-3
ONNX_CHECK_BATCH = 3  # not the traced batch of 2: the check also proves the batch dimension is dynamic


def example_input(student: Student, batch: int = 2) -> torch.Tensor:
    """A random batch shaped as the student's input spec, in its value range."""
    spec = student.input_spec()
    lo, hi = spec.get("range", [0.0, 1.0])
    g = torch.Generator().manual_seed(0)
    return lo + (hi - lo) * torch.rand(batch, *spec["shape"], generator=g)


def _first_line(e: BaseException) -> str:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:200]


def write_format(net: nn.Module, x: torch.Tensor, fmt: str, path: Path) -> None:
    """Trace ``net`` on ``x`` into ``path`` in ``fmt`` (batch size left dynamic where the format allows)."""
    import warnings

    batch = {0: torch.export.Dim.AUTO}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "onnx":
            try:
                import onnx  # noqa: F401  (the exporter needs it; fail with the extra's name, not deep inside)
                import onnxscript  # noqa: F401
            except ImportError:
                raise AipError("ONNX export needs onnx and onnxscript; pip install 'aip[export]'") from None
            # the exporter prints its progress and logs warnings about unrelated ops: keep the CLI quiet
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            with contextlib.redirect_stdout(io.StringIO()):
                torch.onnx.export(net, (x,), str(path), dynamo=True, dynamic_shapes=(batch,), input_names=["input"],
                                  output_names=["logits"], external_data=False, verbose=False)
        elif fmt == "torchscript":
            torch.jit.save(torch.jit.trace(net, (x,), check_trace=False), str(path))
        elif fmt == "exported-program":
            torch.export.save(torch.export.export(net, (x,), dynamic_shapes=(batch,)), str(path))


def check_onnx(net: nn.Module, x: torch.Tensor, path: Path) -> float:
    """Run the ONNX file ``path`` with onnxruntime on ``x`` and compare its logits with ``net``'s; returns the
    largest absolute difference.

    Raises:
        AipError: onnxruntime is missing, or an output differs past ``ONNX_ATOL`` / ``ONNX_RTOL``.
    """
    import numpy as np

    try:
        import onnxruntime as ort
    except ImportError:
        raise AipError("checking the ONNX export needs onnxruntime; pip install 'aip[export]'") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = net(x).float().numpy()
    if got.shape != want.shape:
        raise AipError(f"the ONNX model returns shape {tuple(got.shape)} where PyTorch returns {tuple(want.shape)}; "
                       "use --format torchscript or safetensors")
    diff = float(np.abs(got - want).max())
    if not np.allclose(got, want, atol=ONNX_ATOL, rtol=ONNX_RTOL):
        raise AipError(f"the ONNX model's logits differ from PyTorch's by up to {diff:.3g} on {len(x)} sample inputs "
                       f"(tolerance atol {ONNX_ATOL:g}, rtol {ONNX_RTOL:g}); use --format torchscript or safetensors")
    return diff


def export(path: str | Path, *, fmt: str = "safetensors", out: str | Path | None = None,
           command: str | None = None) -> Path:
    """Export the student of a run directory (or re-export an export folder) to ``out`` (default
    ``PATH/export``); returns the folder.

    ``out`` may be new, empty, or an earlier export: there only the files aip wrote are replaced (each
    atomically, once all are made), its manifest ``.aip-outputs.json`` lists them, and files a user added are
    kept; a same-named file aip did not write is refused before any work (:func:`aip.rundir.owned_outputs`).

    ``command`` is what the model card says made it (default ``aip export PATH [--format FMT]`` with ``PATH``
    relative to the working folder, or its name alone: never an absolute path of this machine).

    Raises:
        AipError: unknown format, no student at ``path``, or a model the format cannot take.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    from safetensors.torch import save_file

    student = load_student(path)
    if command is None:
        command = f"aip export {portable(path)}" + (f" --format {fmt}" if fmt != "safetensors" else "")
    out = Path(out) if out is not None else Path(path) / "export"
    if out.resolve() == Path(path).resolve():
        raise UsageError(f"--out {out} is the folder being exported; pass another folder")
    names = [WEIGHTS, *([FORMATS[fmt]] if FORMATS[fmt] else []), CONFIG, CARD]
    _check_replaceable(out, names)
    net, recipe = student.net, student.recipe
    spec = student.input_spec() if _has_spec(student) else {}
    config: dict[str, Any] = {
        "aip_version": __version__, "modality": recipe.modality, "arch": recipe.student.arch,
        "kwargs": dict(recipe.student.kwargs), "num_classes": len(student.classes), "classes": student.classes,
        "input": spec, "format": fmt,
        "files": [WEIGHTS, *([FORMATS[fmt]] if FORMATS[fmt] else [])], "recipe": recipe.to_dict(),
        "metrics": {k: student.metrics[k] for k in ("dataset", "source", "student", "teacher", "steps", "per_class",
                                                    "agreement") if k in student.metrics},
        **ecosystem_fields(arch=recipe.student.arch, classes=student.classes, spec=spec),
    }
    # only the export's own files are replaced; a model.onnx of an earlier --format onnx is removed
    with rundir.owned_outputs(out, prune=tuple(f for f in FORMATS.values() if f)) as tmp:
        # own copies: safetensors refuses tensors that share (or only partly cover) a storage
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}, tmp / WEIGHTS)
        if FORMATS[fmt]:
            if not config["input"]:
                raise AipError(f"modality {recipe.modality!r} has no input_spec, so its student cannot be traced; "
                               "use --format safetensors")
            try:
                write_format(net, example_input(student), fmt, tmp / FORMATS[fmt])
                if fmt == "onnx":
                    check_onnx(net, example_input(student, batch=ONNX_CHECK_BATCH), tmp / FORMATS[fmt])
            except AipError:
                raise
            except Exception as e:  # each exporter raises its own types for unsupported operations
                raise AipError(f"{recipe.student.arch} cannot be exported as {fmt} ({type(e).__name__}: "
                               f"{_first_line(e)}); --format safetensors always works") from None
        (tmp / CONFIG).write_text(json.dumps(config, indent=2))
        (tmp / CARD).write_text(model_card(config, command=command))
        # safetensors (and the exporters) create their files private (0600); an export is for sharing
        mode = 0o666 & ~files.umask()
        for f in tmp.iterdir():
            os.chmod(f, mode)
    return out


def _check_replaceable(out: Path, names: list[str]) -> None:
    """Refuse, before any work, an ``out`` the export must not write into: a symbolic link (aip never writes
    through links), a file or a path under one, a non-empty folder that holds no earlier export (a user's folder
    given by mistake), or one where a file of the export's ``names`` is there that aip did not write. An export
    of an older aip, which kept no manifest, has its own files listed first (its config.json names them)."""
    files.refuse_link(out, named=f"--out {out}", fix="pass the folder it points to")
    parent = next((p for p in out.parents if os.path.lexists(p)), None)
    if out.exists() and not out.is_dir() or parent is not None and not parent.is_dir():
        where = out if out.exists() else parent
        raise UsageError(f"--out {out}: {where} is a file, not a folder; pass a new folder, or an earlier export to "
                         "write again")
    kept = [p for p in out.iterdir() if p.name != rundir.OUTPUTS_MANIFEST and not p.name.startswith(".aip-")] \
        if out.is_dir() else []
    if not kept:  # new, empty, or holding only aip's bookkeeping (a staging folder of a killed export)
        return
    try:
        earlier = json.loads((out / CONFIG).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        earlier = None
    if not (isinstance(earlier, dict) and "aip_version" in earlier):
        raise UsageError(f"--out {out} holds files that are not an aip export; pass a new folder (an earlier "
                         "export is written again, other folders are never touched)")
    if not os.path.lexists(out / rundir.OUTPUTS_MANIFEST):  # an export of an older aip: its files are aip's
        listed = earlier.get("files") if isinstance(earlier.get("files"), list) else []
        own = {CONFIG, WEIGHTS, *(f for f in listed if f in FORMATS.values())}
        if _is_card(out / CARD):  # a model card aip wrote (a README.md of the user's own is not replaced)
            own.add(CARD)
        files.write_text(json.dumps(sorted(n for n in own if (out / n).is_file())), out / rundir.OUTPUTS_MANIFEST)
    rundir.check_outputs(out, names)


def _is_card(path: Path) -> bool:
    """Whether ``path`` is a model card that ``aip export`` wrote (its last line names the command)."""
    try:
        end = path.read_text(errors="replace")[-2000:] if path.is_file() else ""
    except OSError:
        return False
    return "Made by `" in end and "` with aip " in end


def _has_spec(student: Student) -> bool:
    try:
        student.input_spec()
    except AipError:
        return False
    return True
