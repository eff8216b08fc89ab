"""Class-balanced view selection (an aip extension, not in the paper; off unless ``train.view_pool > 1``).

Views of one image are labelled very unevenly by the teacher: on a photo, a Fashion-MNIST teacher calls
most views "bag" or "T-shirt" and almost none "sneaker". With ``train.view_pool = k`` the trainer draws
``k x batch_size`` views, lets the teacher label all of them (no gradients), and keeps ``batch_size`` views
so that every class gets an equal share of the views the teacher finds most typical of it. Only the
teacher's outputs on views of the source datum are used; no dataset image is looked at.
"""

from __future__ import annotations

import torch


def balanced_indices(logits: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Indices of ``batch_size`` rows of ``logits`` (``(N, K)``, N >= batch_size) balanced over the K classes.

    Classes are visited in random order; each takes its ``ceil(batch_size / K)`` highest-probability views
    not yet taken, until ``batch_size`` views are chosen.
    """
    n, k = logits.shape
    if batch_size > n:
        raise ValueError(f"cannot select {batch_size} views from a pool of {n}")
    probs = logits.float().softmax(-1)
    per = -(-batch_size // k)
    taken = torch.zeros(n, dtype=torch.bool, device=logits.device)
    chosen: list[torch.Tensor] = []
    count = 0
    for c in torch.randperm(k, device=logits.device).tolist():
        score = probs[:, c].masked_fill(taken, -1.0)
        idx = score.topk(min(per, batch_size - count)).indices
        taken[idx] = True
        chosen.append(idx)
        count += len(idx)
        if count >= batch_size:
            break
    return torch.cat(chosen)
