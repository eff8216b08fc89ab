"""Moving small host tensors to the training device without stalling it.

A view generator draws its per-sample parameters (boxes, angles, flips, mixing weights) as small tensors.
Drawn on the host, decisions that depend on them (which pyramid level, which samples get an op) need no
device-to-host read back, which would make the host wait for every queued kernel; copied with
:func:`upload`, they reach a CUDA device asynchronously, so the host keeps queueing work while the GPU runs
the previous step.
"""

from __future__ import annotations

import torch

HOST = torch.device("cpu")


def params_device(device: torch.device) -> torch.device:
    """Where a sampler for ``device`` draws its small per-sample parameters: the host for CUDA (no read backs),
    else ``device`` itself (on the CPU the two are the same, so seeded streams are unchanged)."""
    return HOST if device.type == "cuda" else device


def upload(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t.to(device)``; from the host to a CUDA device through pinned memory, asynchronously."""
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)
