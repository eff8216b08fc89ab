"""View selection (an aip extension, not in the paper; off unless ``train.view_pool > 1``, or
``train.view_select = "adversarial"``, which moves the views it keeps even without a pool).

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
- ``coverage``: a greedy k-centre cover of the pool in the teacher's probability simplex, after PCoreSet
  (arXiv 2506.00910): the first view is drawn at random, each next one is the view farthest (Euclidean distance
  between softmax vectors) from every view kept so far, so the batch spans the teacher's outputs, not its modes.

Student-aware policies (they also need the student's view of the pool; :mod:`aip.step` runs it):

- ``learnability``: the views the teacher is sure of and the student gets most wrong, scored by the teacher's
  top probability times KL(teacher || student) at the loss temperature, after ACID/ACED (CVPR 2025: "easy for
  the reference, hard for the learner").
- ``adversarial``: the views ``balanced`` keeps, then moved by a few signed-gradient steps that raise the
  student-teacher KL (:func:`adversarial_views`), after TST (IJCAI 2023) and "What makes a good dataset for
  knowledge distillation?" (CVPR 2025); the teacher then labels the moved views, so it still labels every view
  the student trains on.

Only the teacher's (and the student's) outputs on views of the source datum are used; no dataset image is
looked at. Every random draw uses torch's global RNG, which checkpoints restore, so a resumed run selects what an
uninterrupted one does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

Policy = Literal["balanced", "entropy", "boundary", "random", "coverage", "learnability", "adversarial"]
POLICIES: tuple[str, ...] = ("balanced", "entropy", "boundary", "random", "coverage", "learnability", "adversarial")
#: the policies that need the student's outputs (a student forward over the pool, or more, every step)
STUDENT_AWARE: tuple[str, ...] = ("learnability", "adversarial")


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


def coverage_indices(logits: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``batch_size`` rows forming a greedy k-centre cover of the rows' softmax vectors (PCoreSet).

    The first row is drawn uniformly (global RNG); each next one is the row whose distance to its nearest kept
    row is largest. Duplicated outputs are kept once before any near-duplicate is taken twice. All on the device,
    with no host read (``batch_size`` small argmax steps over ``N`` distances of ``K`` classes).
    """
    n = _check(logits, batch_size)
    probs = logits.float().softmax(-1)  # (N, K)
    first = torch.randint(n, (1,), device=logits.device)
    chosen = [first]
    nearest = (probs - probs[first]).norm(dim=-1)  # (N,) distance to the nearest kept row
    for _ in range(batch_size - 1):
        nearest[chosen[-1]] = -1.0  # a kept row is never taken again
        nxt = nearest.argmax().reshape(1)
        chosen.append(nxt)
        nearest = torch.minimum(nearest, (probs - probs[nxt]).norm(dim=-1))
    return torch.cat(chosen)


def learnability_scores(t_logits: torch.Tensor, s_logits: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """Per row: the teacher's top probability (at temperature 1) times KL(teacher || student) at ``temperature``.

    High for views the teacher is sure of and the student does not yet match; low where the student already
    agrees (KL near 0) or the teacher itself is unsure.
    """
    t, s = t_logits.float(), s_logits.float()
    confidence = t.softmax(-1).amax(-1)  # (N,)
    log_pt, log_ps = (t / temperature).log_softmax(-1), (s / temperature).log_softmax(-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1)  # (N,)
    return confidence * kl


def learnability_indices(t_logits: torch.Tensor, s_logits: torch.Tensor, batch_size: int, *,
                         temperature: float) -> torch.Tensor:
    """The ``batch_size`` rows of highest :func:`learnability_scores`."""
    _check(t_logits, batch_size)
    if s_logits.shape != t_logits.shape:
        raise ValueError(f"student logits {tuple(s_logits.shape)} do not match teacher logits "
                         f"{tuple(t_logits.shape)}")
    return learnability_scores(t_logits, s_logits, temperature=temperature).topk(batch_size).indices


def adversarial_views(x: torch.Tensor, *, teacher: Callable[[torch.Tensor], torch.Tensor],
                      student: Callable[[torch.Tensor], torch.Tensor], temperature: float, eps: float,
                      steps: int) -> torch.Tensor:
    """``x`` moved by ``steps`` signed-gradient steps that raise KL(teacher || student) at ``temperature``.

    The budget is an L-inf ball of radius ``eps`` times the batch's standard deviation around ``x`` (so one
    setting means the same for normalised pixels, clips and spectrograms), in steps of ``2.5 eps / steps`` (the
    usual PGD step), projected back into the ball after each. Only the input's gradient is computed
    (``torch.autograd.grad``): neither network's parameters receive gradients. Works on inputs of any shape.
    """
    if steps <= 0 or eps <= 0:
        return x
    x0 = x.detach()
    radius = eps * x0.float().std().to(x0.dtype)
    alpha = 2.5 * radius / steps
    adv = x0.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        log_pt = (teacher(adv).float() / temperature).log_softmax(-1)
        log_ps = (student(adv).float() / temperature).log_softmax(-1)
        kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1).mean()
        (grad,) = torch.autograd.grad(kl, adv)
        with torch.no_grad():
            adv = adv.detach() + alpha * grad.sign()
            adv = torch.minimum(torch.maximum(adv, x0 - radius), x0 + radius)
    return adv.detach()


def select_indices(policy: str, logits: torch.Tensor, batch_size: int, *, student_logits: torch.Tensor | None = None,
                   temperature: float = 1.0) -> torch.Tensor:
    """The rows of ``logits`` (the teacher's) that ``policy`` (one of :data:`POLICIES`) keeps.

    ``learnability`` also needs ``student_logits`` (same shape) and the loss ``temperature``; ``adversarial``
    keeps what ``balanced`` keeps (its views are moved afterwards, by :func:`adversarial_views`).
    """
    if policy == "learnability":
        if student_logits is None:
            raise ValueError("the learnability policy needs the student's logits over the pool")
        return learnability_indices(logits, student_logits, batch_size, temperature=temperature)
    fn = {"balanced": balanced_indices, "entropy": entropy_indices, "boundary": boundary_indices,
          "random": random_indices, "coverage": coverage_indices, "adversarial": balanced_indices}.get(policy)
    if fn is None:
        raise ValueError(f"unknown view selection policy {policy!r}; known: {', '.join(POLICIES)}")
    return fn(logits, batch_size)
