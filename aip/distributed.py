"""Data-parallel training on torch.distributed, started by ``torchrun``.

``torchrun --nproc-per-node N -m aip run RECIPE`` starts N processes with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in
their environment; :func:`session` joins them into one process group (NCCL on GPUs, gloo on CPU) and gives each its
device. The rest of aip asks :func:`current` who it is: each rank draws its own views (seeded by rank), the student
is wrapped in ``DistributedDataParallel`` (the teacher is not: it has no gradients), evaluation is sharded and its
counts summed, and only rank 0 writes files. A plain ``aip run`` is the one-process case of the same code.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from aip.errors import AipError, UsageError


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def current() -> Dist:
    """The running job's ranks (one process, rank 0, when no process group is initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Dist()
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextmanager
def session(device: torch.device, *, timeout_minutes: float = 120.0) -> Iterator[torch.device]:
    """Join the torchrun job (if any) for the duration of the block; yields this process's device.

    With ``device`` cuda, rank r of a node uses ``cuda:LOCAL_RANK`` and NCCL; on CPU, gloo.
    """
    if not launched_by_torchrun():
        yield device
        return
    if not dist.is_available():
        raise AipError("this PyTorch build has no torch.distributed; run without torchrun")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UsageError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible; "
                             "lower --nproc-per-node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=timeout_minutes))
    try:
        yield device
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    if current().active:
        dist.barrier()


def agree(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (decisions that must not diverge, e.g. "is this file there?")."""
    if not current().active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree_any(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank (e.g. "a stop was asked for"), known to every rank."""
    if not current().active:
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order (on every rank)."""
    d = current()
    if not d.active:
        return [value]
    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, value)
    return out


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over ranks (in place, returned)."""
    if current().active:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of ``t`` over ranks (in place, returned)."""
    d = current()
    if d.active:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= d.world
    return t


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (downloads, teacher training, caches), then the others, which find its work."""
    d = current()
    if d.active and not d.is_main:
        dist.barrier()
    yield  # if rank 0 fails here, torchrun stops the others: they must not redo its work on their own
    if d.active and d.is_main:
        dist.barrier()
