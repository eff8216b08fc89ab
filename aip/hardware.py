"""Device and precision policy, in one place: which device a run uses, whether it computes in bf16, which
memory layout its 4-D batches take, and how the CUDA backends are tuned.

Everything that runs a model (training, teacher training, evaluation, the benchmark) asks this module instead
of deciding for itself, so ``aip bench`` measures exactly what ``aip run`` does.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from aip.errors import AipError, UsageError
from aip.recipe import Recipe


def resolve_device(name: str = "auto") -> torch.device:
    """The ``--device`` to train on: ``auto`` (CUDA if visible, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    aip's loop, CUDA graphs and AMP are built and tested for CPU and CUDA only, so other device types
    (``mps``, ``xpu``, ``meta``, ...) are refused here rather than failing deep inside a run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {name} is not supported (aip trains on cpu or cuda only); use --device cpu, "
                         "cuda or auto")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA GPU(s) are visible; use "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


@dataclass(frozen=True)
class Policy:
    """How a recipe computes on a device.

    ``amp``: bf16 autocast (``train.amp = "bf16"``, or ``"auto"`` on CUDA). ``memory_format``: channels-last
    for 4-D batches (``train.channels_last`` ``"auto"``/``"on"``: convolutions ran faster in it on both CUDA
    and the CPU, see docs/benchmarks.md), else contiguous. ``channels_last_3d``: 5-D batches (video) and models
    with 3-D convolutions in ``torch.channels_last_3d`` (``train.channels_last = "on"`` only).
    """

    device: torch.device
    amp: bool = False
    memory_format: torch.memory_format = torch.contiguous_format
    channels_last_3d: bool = False

    @classmethod
    def of(cls, recipe: Recipe, device: torch.device) -> Policy:
        amp = recipe.train.amp == "bf16" or (recipe.train.amp == "auto" and device.type == "cuda")
        layout = torch.channels_last if recipe.train.channels_last in ("on", "auto") else torch.contiguous_format
        return cls(device=device, amp=amp, memory_format=layout, channels_last_3d=recipe.train.channels_last == "on")

    def autocast(self) -> AbstractContextManager[object]:
        return autocast(self.device, self.amp)

    def place(self, model: nn.Module) -> nn.Module:
        """``model`` on the device in the policy's layout (``channels_last`` applies to 4-D weights only, so
        models with 3-D convolutions take ``channels_last_3d`` or stay as they are)."""
        model = model.to(self.device)
        if any(p.dim() == 5 for p in model.parameters()):
            return model.to(memory_format=torch.channels_last_3d) if self.channels_last_3d else model
        return model.to(memory_format=self.memory_format)

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on the device, 4-D batches in the policy's layout."""
        x = x.to(self.device, non_blocking=True)
        if x.dim() == 5 and self.channels_last_3d:
            return x.contiguous(memory_format=torch.channels_last_3d)
        return x.contiguous(memory_format=self.memory_format) if x.dim() == 4 else x

    def tune(self) -> None:
        """On CUDA: let cuDNN pick the fastest convolution algorithms for the (fixed) view shapes, and run the
        float32 matrix products that autocast leaves in float32 on TF32 tensor cores."""
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.set_float32_matmul_precision("high")


def free_memory(device: torch.device) -> int | None:
    """Bytes that ``device`` can still give a process: free GPU memory, or the kernel's MemAvailable on a
    Linux CPU; ``None`` where it is not known."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_step_memory(recipe: Recipe, views: torch.Tensor, device: torch.device) -> None:
    """Refuse a recipe whose views of one step alone (``train.batch_size x train.view_pool`` of them, at the size
    of ``views[0]``) cannot fit in the memory ``device`` has free: such a run would otherwise grow until the
    system kills it. Only the views are counted, so a run this lets through may still need more."""
    count = recipe.train.batch_size * recipe.train.view_pool
    need = count * views[0].numel() * views.element_size()
    free = free_memory(device)
    if free is not None and need > free:
        raise AipError(f"one step's {count:,} views (train.batch_size {recipe.train.batch_size:,} x train.view_pool "
                       f"{recipe.train.view_pool}) need {need / 2**30:,.1f} GiB, more than the {free / 2**30:,.1f} "
                       f"GiB free on {device}; lower train.batch_size (train.grad_accum keeps the effective batch)")


def autocast(device: torch.device, enabled: bool) -> AbstractContextManager[object]:
    """bf16 autocast on ``device`` when ``enabled``, else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else nullcontext()
