"""Source samplers that do not depend on the kind of data, for any modality to reuse.

:class:`DatasetSampler` is the ``dataset:train`` source of the image and audio modalities: views drawn from the
labelled training split with the labels unused, the upper bound of the paper's Table 1, optionally restricted to
N items (its "one image against N images" rows).
"""

from __future__ import annotations

import torch

from aip.errors import AipError


def subset_indices(total: int, count: int, *, seed: int) -> torch.Tensor:
    """``count`` distinct indices of ``range(total)``, the same for the same ``seed`` (a permutation's head, so
    the 10 items of ``count = 10`` are among the 100 of ``count = 100``)."""
    if count > total:
        raise AipError(f"source.train_items = {count} but the training split has only {total} items; "
                       f"use at most {total} (or 0 for all)")
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:count]


class DatasetSampler:
    """Random items of a labelled dataset, labels unused: ``sample(B)`` stacks ``B`` of them on ``device``.

    ``items`` > 0 restricts it to that many items, chosen by :func:`subset_indices` from ``seed``. It reads items
    on the host, so it cannot be captured into a CUDA graph (``capturable = False``).
    """

    capturable = False

    def __init__(self, data: torch.utils.data.Dataset, *, device: torch.device, items: int = 0,
                 seed: int = 0) -> None:
        if items:
            data = torch.utils.data.Subset(data, subset_indices(len(data), items, seed=seed).tolist())
        self.data = data
        self.device = device

    def sample(self, batch_size: int) -> torch.Tensor:
        # the global RNG, so a resumed run continues the same stream (its state is checkpointed)
        idx = torch.randint(len(self.data), (batch_size,)).tolist()
        return torch.stack([self.data[i][0] for i in idx]).to(self.device)
