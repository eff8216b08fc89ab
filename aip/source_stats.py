"""``aip source-stats``: measures of the single source datum that may predict how well it distils.

Two kinds of measure, merged into one flat dict of numbers (the x axis a sweep report can plot accuracy
against, see :mod:`aip.report`):

- the datum itself, from the modality's optional :class:`~aip.modality.SourceMeasures` capability (images:
  compressed PNG/JPEG size at a fixed resolution, pixel entropy, patch diversity; audio: FLAC size, spectral
  entropy), and
- what the teacher makes of it, over ``views`` augmented views exactly as training draws them:
  ``teacher_entropy_bits`` (the mean entropy of its prediction per view), ``teacher_marginal_entropy_bits``
  (the entropy of its mean prediction: how evenly the views spread over the classes) and
  ``teacher_class_coverage`` (the share of classes that are the top class of at least one view) and
  ``teacher_t_stddev`` (:func:`t_stddev`, the spread of its mean prediction over batches of views). These need
  the teacher without training it (a cached ``teacher.kind = "train"`` teacher, or pretrained weights);
  otherwise ``teacher`` says why they are missing.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from aip.errors import AipError
from aip.modality import SourceMeasures
from aip.recipe import Recipe

FILE = "source_stats.json"
#: views per batch for :func:`t_stddev` (1,024 views, the default, make 16 batches)
T_STDDEV_GROUP = 64


def t_stddev(probs: torch.Tensor, *, group: int = T_STDDEV_GROUP) -> float:
    """The "T. stddev" of Wang et al. (NeurIPS 2022) on views of one datum: the teacher's mean prediction over
    each run of ``group`` consecutive views of ``probs`` ``(N, K)`` (views drawn independently, so a run is a
    batch), its standard deviation over the runs, averaged over the K classes. Low: every batch of views gives
    the teacher's same mean prediction (the paper's sign of a good augmentation). NaN with fewer than 2 runs."""
    runs = probs.shape[0] // group
    if runs < 2:
        return float("nan")
    means = probs[: runs * group].float().reshape(runs, group, -1).mean(1)  # (runs, K)
    return float(means.std(0).mean())


def teacher_measures(logits: torch.Tensor) -> dict[str, float]:
    """Entropies (bits), class coverage and :func:`t_stddev` of a teacher's ``logits`` ``(N, K)`` on N views."""
    k = logits.shape[1]
    logp = logits.float().log_softmax(-1)
    p = logp.exp()
    per_view = -(p * logp).sum(-1) / math.log(2)
    mean = p.mean(0)
    marginal = -(mean * mean.clamp(min=1e-30).log2()).sum()
    covered = torch.zeros(k, dtype=torch.bool).index_fill_(0, logits.argmax(-1).cpu(), True)
    return {"teacher_entropy_bits": float(per_view.mean()), "teacher_marginal_entropy_bits": float(marginal),
            "teacher_class_coverage": float(covered.float().mean()), "teacher_max_entropy_bits": math.log2(k),
            "teacher_t_stddev": t_stddev(p)}


def source_stats(recipe: Recipe, *, device: torch.device, views: int = 1024, teacher: bool = True
                 ) -> dict[str, Any]:
    """The measures above for ``recipe``'s source; ``teacher=False`` skips the teacher's."""
    from aip.parts import Parts

    parts = Parts(recipe, device=device)
    modality = parts.modality
    out: dict[str, Any] = {"source": modality.describe_source(recipe)}
    if isinstance(modality, SourceMeasures):
        out.update(modality.source_measures(recipe))
    else:
        out["datum"] = f"modality {recipe.modality!r} measures no source datum (no source_measures capability)"
    if not teacher:
        return out
    try:
        model = parts.cached_teacher()
    except AipError as e:
        out["teacher"] = f"unavailable without training ({e})"
        return out
    torch.manual_seed(recipe.train.seed)
    logits = []
    with torch.no_grad():
        for start in range(0, views, recipe.train.batch_size):
            x = parts.augmenter(parts.sampler.sample(min(recipe.train.batch_size, views - start)))
            with parts.policy.autocast():
                logits.append(model(x).float().cpu())
    out.update(teacher_measures(torch.cat(logits)))
    out["views"] = views
    return out
