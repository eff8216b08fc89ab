"""Distillation losses: the student matches the frozen teacher's temperature-softened predictions."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_kl(student: torch.Tensor, teacher: torch.Tensor, *, temperature: float, t2_scale: bool = False) -> torch.Tensor:
    """KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch.

    This is the paper's loss (``KLDivLoss(batchmean)(log_softmax(s/T), softmax(t/T))``, T = 8 for images, 5
    for video). Hinton et al. multiply by T^2 to keep gradient magnitudes comparable across temperatures;
    the paper's code does not, so ``t2_scale`` is off by default.

    Args:
        student: logits ``(B, K)``.
        teacher: logits ``(B, K)``.
    """
    t = temperature
    log_p_s = F.log_softmax(student.float() / t, dim=-1)
    log_p_t = F.log_softmax(teacher.float() / t, dim=-1)
    loss = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
    return loss * (t * t) if t2_scale else loss


def kd_argmax(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the teacher's arg-max label only (the paper's "AM" ablation)."""
    return F.cross_entropy(student.float(), teacher.argmax(-1))


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, *, kind: str, temperature: float,
                      t2_scale: bool = False) -> torch.Tensor:
    """The loss named by the recipe's ``loss.kind`` (``"kl"`` or ``"argmax"``)."""
    if kind == "kl":
        return kd_kl(student, teacher, temperature=temperature, t2_scale=t2_scale)
    if kind == "argmax":
        return kd_argmax(student, teacher)
    raise ValueError(f"unknown loss kind {kind!r}")
