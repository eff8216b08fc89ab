"""The data path as one CUDA graph: a batch of views for the cost of one launch.

Making a batch (source sampler, then augmenter) is a few dozen small kernels. With small views or small models
(32-px images, tiny audio CNNs) the host spends longer launching them than the GPU spends running them, and
that host time is added to every step. Captured once into a CUDA graph (``torch.cuda.CUDAGraph``), the whole
path is replayed with one call; its random numbers still change at every replay (PyTorch's CUDA generator is
graph-safe: each replay advances its offset), so every batch is new.

A sampler or augmenter can be captured only if it

- draws all its randomness on the device (no host RNG: a captured graph would replay the same host draw);
- never reads the device from the host (no ``.item()``, ``bool(t)``, ``nonzero``, boolean-mask indexing);
- creates no tensors from host data while sampling (constants are made once, at construction);
- keeps its shapes fixed (they are, for a fixed batch size).

The built-in modalities build their samplers and augmenters that way on every device (one code path) and mark
them with the attribute ``capturable = True`` (:class:`aip.modality.Capturable`); the core captures the data path
on CUDA when both are marked and :func:`wanted` says so (``train.graph_data = "auto"``, the default; ``"off"``
never captures). :func:`beta` and :func:`permutation` are draws such a part
needs, made on the device; :func:`forbid_host_reads` lets tests check the second rule on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from aip.errors import AipError
from aip.modality import Capturable

#: ops whose result the host must read from the device (they would break a CUDA graph's capture)
HOST_READS = ("_local_scalar_dense", "nonzero", "is_nonzero", "item", "equal", "masked_select", "unique",
              "_unique", "_unique2", "unique_consecutive", "unique_dim", "repeat_interleave")


def wanted(recipe: Any, device: torch.device) -> bool:
    """Whether the data path of ``recipe`` on ``device`` is to be captured (if its parts are capturable)."""
    return device.type == "cuda" and recipe.train.graph_data != "off"


def capturable(*parts: object) -> bool:
    """Whether every part (sampler, augmenter) says it can be captured (:class:`aip.modality.Capturable`)."""
    return all(isinstance(p, Capturable) and p.capturable for p in parts)


def beta(alpha: float, n: int, device: torch.device) -> torch.Tensor:
    """``n`` draws of Beta(alpha, alpha) made on ``device``, as ``X / (X + Y)`` of two Gamma(alpha) draws
    (``torch.distributions`` would draw on the host, which a graph replays unchanged)."""
    g = torch._standard_gamma(torch.full((2, n), float(alpha), device=device))
    return g[0] / (g[0] + g[1]).clamp(min=1e-30)


def permutation(n: int, device: torch.device) -> torch.Tensor:
    """A random permutation of ``range(n)`` made on ``device``: the argsort of uniform numbers."""
    return torch.rand(n, device=device).argsort()


class GraphedData:
    """``make()`` (a batch of views) replayed from a CUDA graph; on other devices, ``make()`` itself.

    The graph is captured at the first call, after ``warmup`` eager calls on a side stream (which lets lazy
    initialisations and cuDNN/cuFFT plans happen outside the capture; the first of them runs under
    :func:`forbid_host_reads`, so a part that reads the device is found before any capture starts); two replays
    must then make different batches (else some randomness was drawn on the host, and the graph would repeat one
    batch); the random generators are then put back where they were, so the replays draw exactly the numbers
    eager calls would have drawn, and a resumed run continues the same stream. In those two cases ``make()``
    runs eagerly from then on and ``error`` says why. A failure inside the capture itself leaves PyTorch's CUDA
    generator unusable for the process, so it is an :class:`~aip.errors.AipError` that names the way out
    (``train.graph_data = "off"``).

    A replayed batch is the graph's own output tensor, which the next call overwrites (in stream order, so the
    kernels of a step that reads it finish first): a caller that keeps a batch across calls must copy it.
    """

    def __init__(self, make: Callable[[], torch.Tensor], *, device: torch.device, enabled: bool = True,
                 warmup: int = 3) -> None:
        self.make = make
        self.device = device
        self.enabled = enabled and device.type == "cuda"
        self.warmup = warmup
        self.graph: Any = None
        self.out: torch.Tensor | None = None
        self.error = ""

    @property
    def active(self) -> bool:
        """Whether calls replay a captured graph (after the first call)."""
        return self.graph is not None

    def __call__(self) -> torch.Tensor:
        if not self.enabled:
            return self.make()
        if self.graph is None:
            try:
                self._capture()
            except (HostReadError, _RepeatedBatch) as e:  # a part that said it was capturable is not
                self.enabled, self.graph, self.out = False, None, None
                self.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                return self.make()
        self.graph.replay()
        return self.out

    def _capture(self) -> None:
        cpu_rng, cuda_rng = torch.get_rng_state(), torch.cuda.get_rng_state(self.device)
        broken = False  # the capture itself failed: the CUDA generator's state cannot be set any more
        try:
            current = torch.cuda.current_stream(self.device)
            side = torch.cuda.Stream(self.device)
            side.wait_stream(current)
            with torch.cuda.stream(side):
                with forbid_host_reads():
                    self.make()
                for _ in range(self.warmup - 1):
                    self.make()
            current.wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    out = self.make()
            except Exception as e:
                broken = True
                raise AipError(f"the data path could not be captured into a CUDA graph ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''}); set train.graph_data = 'off' "
                               "(--set train.graph_data=off)") from e
            graph.replay()
            first = out.clone()
            graph.replay()
            if torch.equal(first, out):
                raise _RepeatedBatch("two replays made the same batch: the data path draws randomness on the host")
            self.graph, self.out = graph, out
        finally:
            if not broken:
                torch.cuda.synchronize(self.device)
                torch.set_rng_state(cpu_rng)
                torch.cuda.set_rng_state(cuda_rng, self.device)


class HostReadError(RuntimeError):
    """A data path meant for capture read a device value on the host."""


class _RepeatedBatch(RuntimeError):
    """A captured data path replays one batch (it drew randomness on the host)."""


class _ForbidHostReads(TorchDispatchMode):
    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = func.overloadpacket.__name__
        if name in HOST_READS or (name in ("index", "index_put", "index_put_") and any(
                isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] if i is not None)):
            raise HostReadError(f"{name} reads a device value on the host; a CUDA graph cannot capture it")
        return func(*args, **(kwargs or {}))


@contextmanager
def forbid_host_reads() -> Iterator[None]:
    """Raise :class:`HostReadError` at any op that makes the host read a tensor's value (``.item()``,
    ``bool(t)``, ``nonzero``, boolean-mask indexing, ...): runs on any device, so tests on the CPU can check
    that a capturable data path would capture."""
    with _ForbidHostReads():
        yield
