"""``aip export``: a distilled student as a self-contained folder, in the Hugging Face layout.

The folder holds ``model.safetensors`` (always), the traced model for the chosen ``format`` (``model.onnx``,
``model.ts`` for TorchScript, ``model.pt2`` for a ``torch.export`` ExportedProgram), ``config.json``
(modality, architecture and kwargs, class names, the input the model takes, the resolved recipe, measured
accuracy) and a ``README.md`` model card. The model inside takes views as :meth:`Student.input_spec`
describes them (batch first) and returns logits; it normalises its input itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aip import __version__, files
from aip.errors import AipError
from aip.student import CONFIG, WEIGHTS, Student, load_student

FORMATS = {"safetensors": None, "onnx": "model.onnx", "torchscript": "model.ts", "exported-program": "model.pt2"}


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


def model_card(config: dict[str, Any], *, command: str) -> str:
    """The README.md of an export folder."""
    m, r = config.get("metrics", {}), config["recipe"]
    teacher = r["teacher"].get("arch") or f"{r['teacher'].get('hub_repo')}:{r['teacher'].get('hub_entry')}"
    acc = m.get("student", {}).get("top1")
    t_acc = m.get("teacher", {}).get("top1")
    shape = config.get("input", {}).get("shape")
    accuracy = (f"{acc:.2f} % top-1 on the {m.get('dataset', r['eval']['dataset'])} test split"
                + (f" (teacher {t_acc:.2f} %)" if t_acc is not None else "")) if acc is not None else "not measured"
    files_ = ", ".join(f"`{f}`" for f in config["files"])
    classes = ", ".join(config["classes"][:20]) + (" ..." if len(config["classes"]) > 20 else "")
    return f"""# {r.get('name', 'student')}: an aip student ({config['arch']})

{_article(config["modality"])} {config["modality"]} classifier distilled with aip (The Augmented Image Prior) from a
single datum: it never saw a labelled example, only augmented views of one source, labelled by a frozen teacher.

| | |
| --- | --- |
| source datum | {m.get('source') or r['source'].get('uri', 'one datum')} |
| teacher | {r['teacher']['kind']} {teacher} |
| student | {config['arch']} {json.dumps(config['kwargs'])} |
| recipe | {r.get('name', '')} (resolved in `config.json`, key `recipe`) |
| measured accuracy | {accuracy} |
| classes | {len(config['classes'])}: {classes} |
| input | one view {shape}, batch first; {config.get('input', {}).get('preprocess', '')} |
| files | {files_} |

Made by `{command}` with aip {config['aip_version']}. Use it:

```python
import aip
student = aip.load_student("THIS_FOLDER")     # eval mode, no dataset needed
print(student.predict("input-file").labels)   # top classes, most likely first
```

or `aip predict THIS_FOLDER FILE...`. Without aip, `model.safetensors` holds the state dict of the
architecture above and the ONNX/TorchScript files take a float tensor batch of the input shape and return logits.
"""


def export(path: str | Path, *, fmt: str = "safetensors", out: str | Path | None = None,
           command: str = "aip export") -> Path:
    """Export the student of a run directory (or re-export an export folder) to ``out`` (default
    ``PATH/export``); returns the folder. An existing folder is replaced only once the new one is complete.

    Raises:
        AipError: unknown format, no student at ``path``, or a model the format cannot take.
    """
    if fmt not in FORMATS:
        raise AipError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    from safetensors.torch import save_file

    student = load_student(path)
    out = Path(out) if out is not None else Path(path) / "export"
    if out.resolve() == Path(path).resolve():
        raise AipError(f"--out {out} is the folder being exported; pass another folder")
    _check_replaceable(out)
    net, recipe = student.net, student.recipe
    config: dict[str, Any] = {
        "aip_version": __version__, "modality": recipe.modality, "arch": recipe.student.arch,
        "kwargs": dict(recipe.student.kwargs), "num_classes": len(student.classes), "classes": student.classes,
        "input": student.input_spec() if _has_spec(student) else {}, "format": fmt,
        "files": [WEIGHTS, *([FORMATS[fmt]] if FORMATS[fmt] else [])], "recipe": recipe.to_dict(),
        "metrics": {k: student.metrics[k] for k in ("dataset", "source", "student", "teacher", "steps", "per_class",
                                                    "agreement") if k in student.metrics},
    }
    with files.atomic_dir(out) as tmp:
        # own copies: safetensors refuses tensors that share (or only partly cover) a storage
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}, tmp / WEIGHTS)
        if FORMATS[fmt]:
            if not config["input"]:
                raise AipError(f"modality {recipe.modality!r} has no input_spec, so its student cannot be traced; "
                               "use --format safetensors")
            try:
                write_format(net, example_input(student), fmt, tmp / FORMATS[fmt])
            except AipError:
                raise
            except Exception as e:  # each exporter raises its own types for unsupported operations
                raise AipError(f"{recipe.student.arch} cannot be exported as {fmt} ({type(e).__name__}: "
                               f"{_first_line(e)}); --format safetensors always works") from None
        (tmp / CONFIG).write_text(json.dumps(config, indent=2))
        (tmp / "README.md").write_text(model_card(config, command=command))
    return out


def _check_replaceable(out: Path) -> None:
    """An existing ``out`` is replaced whole, so it must be empty or an earlier export (its config.json
    names an aip version): a user's folder given by mistake is never deleted."""
    if not out.exists():
        return
    if not out.is_dir():
        raise AipError(f"--out {out} is a file; pass a new folder, or an earlier export to replace")
    if not any(out.iterdir()):
        return
    try:
        earlier = json.loads((out / CONFIG).read_text())
    except (OSError, ValueError):
        earlier = None
    if not (isinstance(earlier, dict) and "aip_version" in earlier):
        raise AipError(f"--out {out} holds files that are not an aip export; pass a new folder (an earlier "
                       "export is replaced, other folders are never touched)")


def _has_spec(student: Student) -> bool:
    try:
        student.input_spec()
    except AipError:
        return False
    return True


def _article(word: str) -> str:
    return "An" if word[:1].lower() in "aeiou" else "A"
