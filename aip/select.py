"""View selection (an aip extension, not in the paper; off unless ``train.view_pool > 1``).

With ``train.view_pool = k`` the trainer draws ``k x batch_size`` views, lets the teacher label all of them
(no gradients), and keeps ``batch_size`` of them by the policy ``train.view_select``:

- ``balanced`` (the default): every class gets an equal share of the views the teacher finds most typical
  of it. Views of one image are labelled very unevenly: on a photo, a Fashion-MNIST teacher calls most views
  "bag" or "T-shirt" and almost none "sneaker".
- ``entropy``: the views on which the teacher is least sure (highest entropy of its softmax), after
  CutMixPick (Wang et al., NeurIPS 2022), which picks distillation inputs by the teacher's entropy.
- ``boundary``: class-balanced like ``balanced``, but each class takes the views on the boundary between it and
  another class (both near the teacher's top probability) instead of its most typical ones, after "What makes
  a good dataset for knowledge distillation?" (CVPR 2025): class-uniform teacher predictions near decision
  boundaries.
- ``random``: a uniformly random subset, the baseline that isolates the effect of the pool itself.

Only the teacher's outputs on views of the source datum are used; no dataset image is looked at.
"""

from __future__ import annotations

from typing import Literal

import torch

Policy = Literal["balanced", "entropy", "boundary", "random"]
POLICIES: tuple[str, ...] = ("balanced", "entropy", "boundary", "random")


def _check(logits: torch.Tensor, batch_size: int) -> int:
    n = logits.shape[0]
    if batch_size > n:
        raise ValueError(f"cannot select {batch_size} views from a pool of {n}")
    return n


def balanced_indices(logits: torch.Tensor, batch_size: int, *, boundary: bool = False) -> torch.Tensor:
    """Indices of ``batch_size`` rows of ``logits`` (``(N, K)``, N >= batch_size) balanced over the K classes.

    Classes are visited in random order; each takes its ``ceil(batch_size / K)`` best-scoring views not yet
    taken, until ``batch_size`` views are chosen. A view's score for class c is its probability of c or, with
    ``boundary``, ``min(p_c, max over other classes of p)``: highest for a view the teacher splits evenly
    between c and one other class, low for views that are clearly c or clearly not c.
    """
    n = _check(logits, batch_size)
    k = logits.shape[1]
    probs = logits.float().softmax(-1)
    if boundary:
        top2 = probs.topk(min(2, k), dim=-1)
        first, second = top2.values[:, 0], top2.values[:, -1]
    per = -(-batch_size // k)
    taken = torch.zeros(n, dtype=torch.bool, device=logits.device)
    chosen: list[torch.Tensor] = []
    count = 0
    for c in torch.randperm(k, device=logits.device).tolist():
        score = probs[:, c]
        if boundary:  # the strongest other class: the runner-up where c is the top class, else the top one
            other = torch.where(top2.indices[:, 0] == c, second, first)
            score = torch.minimum(score, other)
        score = score.masked_fill(taken, -1.0)
        idx = score.topk(min(per, batch_size - count)).indices
        taken[idx] = True
        chosen.append(idx)
        count += len(idx)
        if count >= batch_size:
            break
    return torch.cat(chosen)


def entropy_indices(logits: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Indices of the ``batch_size`` rows whose softmax has the highest entropy (the teacher's least sure)."""
    _check(logits, batch_size)
    logp = logits.float().log_softmax(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return entropy.topk(batch_size).indices


def boundary_indices(logits: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Class-balanced rows nearest a decision boundary of the teacher (:func:`balanced_indices` with
    ``boundary``)."""
    return balanced_indices(logits, batch_size, boundary=True)


def random_indices(logits: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``batch_size`` distinct rows drawn uniformly (torch's global RNG, as checkpoints restore it)."""
    n = _check(logits, batch_size)
    return torch.randperm(n, device=logits.device)[:batch_size]


def select_indices(policy: str, logits: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The rows of ``logits`` that ``policy`` (one of :data:`POLICIES`) keeps."""
    fn = {"balanced": balanced_indices, "entropy": entropy_indices, "boundary": boundary_indices,
          "random": random_indices}.get(policy)
    if fn is None:
        raise ValueError(f"unknown view selection policy {policy!r}; known: {', '.join(POLICIES)}")
    return fn(logits, batch_size)
