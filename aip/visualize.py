"""Feature visualisation of class logits by activation maximisation, as Lucid/Lucent do it.

For each chosen class, an input is optimised (Adam) to raise the model's logit of that class. The input is
not optimised pixel by pixel but through the modality's :class:`aip.modality.Visuals`: a decorrelated
parametrisation (e.g. Fourier coefficients scaled by 1/frequency, colours decorrelated) and, at every step, a
random transformation (jitter, scale, rotation or their analogue for the data kind), so the result is what the
model responds to robustly rather than adversarial noise. A fixed seed makes it repeatable. The student and
(optionally) the teacher are optimised from the same start and rendered side by side, with a progress bar per
model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aip import files
from aip.errors import AipError, UsageError
from aip.modality import Visualizer, Visuals
from aip.progress import tqdm
from aip.rundir import owned_outputs


@dataclass(frozen=True)
class Result:
    """Optimised inputs ``(N, *view)`` for ``N`` classes and each class's logit before and after."""

    inputs: torch.Tensor
    start: list[float]
    end: list[float]


def maximise(model: nn.Module, visuals: Visuals, targets: list[int], *, steps: int = 256, lr: float = 0.05,
             seed: int = 0, device: torch.device | str = "cpu", desc: str = "visualize") -> Result:
    """Optimise one input per class index in ``targets``, parametrised and transformed by ``visuals``, to
    maximise ``model``'s logit of that class. A frozen teacher is unwrapped: its forward pass runs without
    gradients, and the gradient with respect to the input is what this needs."""
    from aip.teacher import FrozenTeacher

    if isinstance(model, FrozenTeacher):
        model = model.model
    model = model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    params = visuals.params(len(targets), generator=g).to(device).requires_grad_(True)
    idx = torch.arange(len(targets), device=device)
    target = torch.tensor(targets, device=device)

    def logits_of(x: torch.Tensor) -> torch.Tensor:
        return model(x)[idx, target]

    with torch.no_grad():
        start = logits_of(visuals.input(params)).tolist()
    opt = torch.optim.Adam([params], lr=lr)
    for _ in tqdm(range(steps), desc=desc, unit="step", dynamic_ncols=True, leave=False):
        x = visuals.transform(visuals.input(params), generator=g)
        loss = -logits_of(x).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        x = visuals.input(params)
        end = logits_of(x).tolist()
    return Result(x.detach().cpu(), start, end)


def pick_classes(classes: list[str], names: list[str] | None, *, limit: int = 10) -> list[int]:
    """Indices of ``names`` in ``classes`` (default: the first ``limit`` classes)."""
    if not names:
        return list(range(min(limit, len(classes))))
    unknown = [n for n in names if n not in classes]
    if unknown:
        shown = ", ".join(classes[:30]) + (" ..." if len(classes) > 30 else "")
        raise UsageError(f"unknown class {unknown[0]!r} in --classes; the model's classes: {shown}")
    return [classes.index(n) for n in names]


def visualize(models: dict[str, nn.Module], visualizer: Any, recipe: Any, *, classes: list[str],
              names: list[str] | None = None, out: Path, steps: int = 256, lr: float = 0.05, seed: int = 0,
              device: torch.device | str = "cpu") -> list[Path]:
    """Activation maximisation of the chosen classes for each model in ``models`` (``{"student": ...,
    "teacher": ...}``), rendered side by side into ``out``; also writes ``visualize.json`` with every
    class's logit before and after. Returns the files written. Files of an earlier visualisation in ``out``
    are replaced; a same-named file aip did not write is refused (:func:`aip.rundir.owned_outputs`)."""
    if not isinstance(visualizer, Visualizer):
        raise AipError(f"modality {recipe.modality!r} has no feature visualisation (it does not implement "
                       "aip.modality.Visualizer)")
    visuals = visualizer.visuals(recipe)
    targets = pick_classes(classes, names)
    labels = [classes[i] for i in targets]
    inputs, report = {}, {}
    for role, model in models.items():
        r = maximise(model, visuals, targets, steps=steps, lr=lr, seed=seed, device=device, desc=f"visualize {role}")
        inputs[role] = r.inputs
        report[role] = {c: {"start": s, "end": e} for c, s, e in zip(labels, r.start, r.end)}
    with owned_outputs(out) as staging:  # a same-named file aip did not write is refused, never replaced
        written = visuals.render(inputs, labels, staging / "classes.png")
        files.write_text(json.dumps({"steps": steps, "lr": lr, "seed": seed, "logits": report}, indent=2),
                         staging / "visualize.json")
        # every file the renderer wrote (a figure's PDF beside its PNG too), not only the paths it returned
        made = {p.name for p in [*written, *staging.iterdir()]}
    return [out / name for name in sorted(made)]


def visualize_student(path: str | Path, *, names: list[str] | None = None, teacher: bool = False,
                      out: Path | None = None, steps: int = 256, lr: float = 0.05, seed: int = 0,
                      device: torch.device | str = "cpu") -> list[Path]:
    """:func:`visualize` for the student of a run directory or export folder (default output
    ``PATH/visualize``); ``teacher`` adds the recipe's teacher (it must be available without training: cached,
    pretrained or a checkpoint; its cache key needs the recipe's dataset)."""
    from aip.student import load_student

    student = load_student(path, device=device)
    recipe, modality = student.recipe, student.modality
    models: dict[str, nn.Module] = {"student": student.net}
    if teacher:
        from aip.parts import Parts

        models["teacher"] = Parts(recipe, device=torch.device(device), modality=modality).cached_teacher()
    torch.manual_seed(seed)
    return visualize(models, modality, recipe, classes=student.classes, names=names,
                     out=Path(out) if out is not None else Path(path) / "visualize", steps=steps, lr=lr, seed=seed,
                     device=device)
