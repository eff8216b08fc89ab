"""Model memory before anything is allocated: whether a recipe's teacher and student can be trained on a device.

A recipe edited to ``student.kwargs.width = 100000000``, or ``aip bench --num-classes 1000000000``, passes the
schema but asks for more memory than any machine has; allocating it fails deep in the allocator (or the system
kills the process). :func:`check_fits` builds the models on PyTorch's ``meta`` device (shapes only, no memory,
no weights downloaded), counts their parameters and, where the view shape is known, runs one meta forward pass
of a training batch to count the activations autograd keeps, and refuses the recipe in one line when the
estimate exceeds the device's memory: the total RAM on a CPU, the free memory of a GPU.

The estimate is of the largest phase: training the teacher (``teacher.kind = "train"``: its weights, gradients,
optimiser state and one batch's activations) or distilling (the frozen teacher's weights, the student's
weights, gradients and optimiser state, and one batch's activations). Everything is counted in float32, as
aip keeps master weights in float32 under bf16 autocast; a run this lets through may still need more (the
allocator's slack, the data pipeline), so it is a bound against impossible recipes, not a guarantee.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from aip.errors import AipError
from aip.hardware import free_memory

if TYPE_CHECKING:
    from aip.modality import Modality
    from aip.parts import Parts
    from aip.recipe import Recipe, StudentConfig, TeacherConfig

#: optimiser state per parameter, in parameter-sized tensors (Adam's two moments, SGD's momentum buffer)
OPTIMIZER_SLOTS = {"adamw": 2, "adam": 2, "sgd": 1}
FLOAT = 4  # bytes of a float32 parameter, gradient or optimiser slot


@dataclass(frozen=True)
class Model:
    """One model of the estimate: its role and section, parameters, and one training batch's activations."""

    role: str  # "student" or "teacher"
    arch: str
    params: int
    activations: int | None  # bytes kept for backward by one training batch; None when the forward is unknown


@dataclass(frozen=True)
class Footprint:
    """The memory the recipe's largest phase needs, in bytes (see the module docstring)."""

    student: Model
    teacher: Model | None  # None for a torch.hub teacher (its architecture needs a download)
    student_slots: int
    teacher_slots: int
    teacher_trains: bool

    @property
    def distil_bytes(self) -> int:
        s = self.student
        frozen = self.teacher.params * FLOAT if self.teacher else 0
        return frozen + s.params * FLOAT * (2 + self.student_slots) + (s.activations or 0)

    @property
    def teacher_bytes(self) -> int:
        t = self.teacher
        if t is None or not self.teacher_trains:
            return 0
        return t.params * FLOAT * (2 + self.teacher_slots) + (t.activations or 0)

    #: the phases counted: "teacher" (training it), "distil" (the student's training), "student" (the student's
    #: weights alone: ``aip eval``)
    phases: tuple[str, ...] = ("teacher", "distil")

    @property
    def student_bytes(self) -> int:
        return self.student.params * FLOAT

    @property
    def bytes(self) -> int:
        sizes = {"teacher": self.teacher_bytes, "distil": self.distil_bytes, "student": self.student_bytes}
        return max(sizes[p] for p in self.phases)

    @property
    def weights_bytes(self) -> int:
        """:attr:`bytes` without the activations: what no batch size can lower."""
        acts = (self.teacher.activations or 0) if self.teacher and self.teacher_trains else 0
        sizes = {"teacher": self.teacher_bytes - acts, "student": self.student_bytes,
                 "distil": self.distil_bytes - (self.student.activations or 0)}
        return max(sizes[p] for p in self.phases)

    @property
    def largest(self) -> Model:
        """The model that makes most of the need (the one to shrink)."""
        s = self.student
        own = s.params * FLOAT * (2 + self.student_slots) + (s.activations or 0) if "distil" in self.phases \
            else self.student_bytes if "student" in self.phases else 0
        teacher = self.teacher_bytes if "teacher" in self.phases else 0
        teacher = max(teacher, self.teacher.params * FLOAT if "distil" in self.phases and self.teacher else 0)
        if self.teacher is not None and teacher > own:
            return self.teacher
        return s


def size(n: float) -> str:
    """Bytes in words: '12.3 MiB', '4.0 TiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError


def memory_limit(device: torch.device) -> int | None:
    """Bytes a run may use on ``device``: the free memory of a GPU, the total RAM of a CPU (other programs'
    use changes by the minute; a model larger than the whole RAM can never train); ``None`` when unknown."""
    if device.type != "cpu":
        return free_memory(device)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _activations(model: nn.Module, batch: int, view_shape: tuple[int, ...], *, element: int) -> int | None:
    """Bytes of the outputs of ``model``'s leaf modules for a batch of ``batch`` views (what autograd keeps for
    backward, roughly: each layer saves its input or output), ``element`` bytes a value (2 under bf16 autocast),
    from one forward pass on the meta device; in-place layers add nothing. ``None`` when the model cannot run on
    meta (a data-dependent forward)."""
    total = 0

    def count(module: nn.Module, _: Any, out: Any) -> None:
        nonlocal total
        if getattr(module, "inplace", False):
            return
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                total += t.numel() * element

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        model(torch.empty(batch, *view_shape, device="meta"))
    except Exception:  # noqa: BLE001 (any model: .item(), numpy or a data-dependent shape cannot run on meta)
        return None
    finally:
        for h in hooks:
            h.remove()
    return total


def _model(modality: Modality, recipe: Recipe, spec: TeacherConfig | StudentConfig, *, role: str, num_classes: int,
           batch: int, view_shape: tuple[int, ...] | None, element: int) -> Model:
    from aip.teacher import build_model

    with torch.device("meta"):  # shapes only: no memory, no weights downloaded
        try:
            net = build_model(modality, recipe, spec, num_classes=num_classes, pretrained=False)
        except AipError:
            raise
        except Exception as e:  # noqa: BLE001 (a builder's own error for kwargs it cannot take)
            raise AipError(f"{role}.arch {spec.arch!r} does not build with {role}.kwargs {dict(spec.kwargs)} "
                           f"({type(e).__name__}: {str(e).strip()[:100]})".replace("\n", " ")) from None
        params = sum(p.numel() for p in net.parameters())
        acts = _activations(net, batch, view_shape, element=element) if view_shape else None
    return Model(role, spec.arch, params, acts)


def estimate(recipe: Recipe, *, modality: Modality, num_classes: int, view_shape: tuple[int, ...] | None = None,
             amp: bool = False, phases: tuple[str, ...] = ("teacher", "distil")) -> Footprint:
    """The :class:`Footprint` of ``recipe`` with ``num_classes`` classes, its views shaped ``view_shape`` (one
    view, without the batch; activations are left out where it is ``None``), built on the meta device;
    ``amp``: activations in bf16 (the run's autocast)."""
    element = 2 if amp else FLOAT
    student = _model(modality, recipe, recipe.student, role="student", num_classes=num_classes,
                     batch=recipe.train.batch_size, view_shape=view_shape, element=element)
    teacher = None
    if recipe.teacher.kind != "hub" and phases != ("student",):
        teacher = _model(modality, recipe, recipe.teacher, role="teacher", num_classes=num_classes,
                         batch=recipe.teacher.fit.batch_size, view_shape=view_shape, element=element)
    return Footprint(student=student, teacher=teacher, student_slots=OPTIMIZER_SLOTS.get(recipe.train.optimizer, 2),
                     teacher_slots=OPTIMIZER_SLOTS.get(recipe.teacher.fit.optimizer, 2),
                     teacher_trains=recipe.teacher.kind == "train", phases=phases)


def problem(recipe: Recipe, found: Footprint, limit: int | None, *, device: torch.device, modality: Modality,
            num_classes: int, view_shape: tuple[int, ...] | None = None, amp: bool = False,
            classes_from: str = "the dataset") -> str | None:
    """One line saying why ``found`` does not fit in ``limit`` bytes of ``device``, naming the recipe field to
    lower, the estimate and the limit; ``None`` when it fits (or the limit is unknown)."""
    if limit is None or found.bytes <= limit:
        return None
    big = found.largest
    section = getattr(recipe, big.role)
    kwargs = ", ".join(f"{k}={v}" for k, v in dict(section.kwargs).items())
    field = f"{big.role}.kwargs ({kwargs}) or {big.role}.arch" if kwargs else f"{big.role}.arch"
    if found.weights_bytes <= limit:  # the weights fit: one batch's activations are what is too large
        field = ("teacher.fit.batch_size" if big.role == "teacher"
                 else "train.batch_size (train.grad_accum keeps the effective batch)")
    elif num_classes > 2:  # is it the classifier head? the same models with two classes fit
        few = estimate(recipe, modality=modality, num_classes=2, view_shape=view_shape, amp=amp, phases=found.phases)
        if few.bytes <= limit:
            field = f"the class count ({num_classes:,}, from {classes_from})"
    phase = ("load the student" if found.phases == ("student",) else "train the teacher"
             if "teacher" in found.phases and found.teacher_bytes >= found.bytes else "distil the student")
    return (f"{big.role} {big.arch!r} has {big.params:,} parameters: an estimated {size(found.bytes)} to {phase}, "
            f"more than the {size(limit)} of memory on {device}; lower {field}")


def check_fits(recipe: Recipe, *, modality: Modality, num_classes: int, device: torch.device,
               view_shape: tuple[int, ...] | None = None, amp: bool = False,
               classes_from: str = "the dataset", phases: tuple[str, ...] = ("teacher", "distil")) -> Footprint:
    """Refuse a recipe whose models cannot be trained in the memory of ``device`` (see the module docstring),
    before anything is allocated; returns the estimate.

    ``classes_from`` names where ``num_classes`` comes from (``--num-classes`` in ``aip bench``), for the message
    when it is the class count that makes the models too large.
    ``phases``: what the command does (:attr:`Footprint.phases`): ``("teacher",)`` for ``aip teacher``,
    ``("student",)`` for ``aip eval``.

    Raises:
        AipError: one line naming the field to change, the estimated size and the limit.
    """
    found = estimate(recipe, modality=modality, num_classes=num_classes, view_shape=view_shape, amp=amp,
                     phases=phases)
    line = problem(recipe, found, memory_limit(device), device=device, modality=modality, num_classes=num_classes,
                   view_shape=view_shape, amp=amp, classes_from=classes_from)
    if line:
        raise AipError(line)
    return found


def check_parts(parts: Parts, views: torch.Tensor | None = None, *, classes_from: str = "the dataset",
                phases: tuple[str, ...] = ("teacher", "distil")) -> Footprint:
    """:func:`check_fits` for the parts of a run (:class:`aip.parts.Parts`), before its models are built;
    ``views`` is a batch of its augmented views (``parts.first_views``; without it the activations are not
    counted)."""
    return check_fits(parts.recipe, modality=parts.modality, num_classes=parts.num_classes, device=parts.device,
                      view_shape=tuple(views.shape[1:]) if views is not None else None, amp=parts.policy.amp,
                      classes_from=classes_from, phases=phases)
