"""The modality contract's checks, shipped with aip so that a plugin's own test suite can call them.

:func:`check_modality` runs them all on one modality: it implements :class:`aip.modality.Modality`, its
``catalog()`` names something of each kind, its ``example()`` recipe validates, one batch goes through sampler,
augmenter, teacher and student with finite logits of matching shapes and gradients that reach the student, and,
where the modality marks its data path capturable (:class:`aip.modality.Capturable`), that path reads nothing
back from the device. A failed check raises :class:`ConformanceError` (an ``AssertionError``, so pytest shows
it as a failed test) naming the modality and what is wrong. aip's own suite calls them for every installed
modality (``tests/core/test_conformance.py``); a plugin calls them from its tests::

    from aip.testing import check_modality
    from aip_toy import modality

    def test_the_toy_keeps_the_modality_contract():
        check_modality(modality)
"""

from __future__ import annotations

from typing import Any

import torch

from aip import graphs
from aip.config import A, Recipe, S
from aip.modality import Augmenter, Modality, SourceSampler

CPU = torch.device("cpu")

__all__ = ["ConformanceError", "check_capturable", "check_modality", "check_one_batch", "check_protocol",
           "example_recipe"]


class ConformanceError(AssertionError):
    """A modality breaks the contract of :class:`aip.modality.Modality`."""


def _require(condition: bool, modality: Any, message: str) -> None:
    if not condition:
        raise ConformanceError(f"modality {getattr(modality, 'name', modality)!r}: {message}")


def check_protocol(modality: Modality[S, A]) -> None:
    """Every member of the protocol is there, and ``catalog()`` lists models, datasets and sources."""
    _require(isinstance(modality, Modality), modality, "does not provide every member of aip.modality.Modality ("
             + ", ".join(m for m in dir(Modality) if not m.startswith("_") and not hasattr(modality, m)) + ")")
    for attr in ("name", "SourceConfig", "AugmentConfig"):
        _require(hasattr(modality, attr), modality, f"has no {attr}")
    catalog = modality.catalog()
    _require(isinstance(catalog, dict) and {"models", "datasets", "sources"} <= set(catalog), modality,
             f"catalog() must hold 'models', 'datasets' and 'sources', got {catalog!r}")
    empty = [k for k, v in catalog.items() if not v]
    _require(not empty, modality, f"catalog() lists no {', '.join(empty)}")


def example_recipe(modality: Modality[S, A]) -> Recipe[S, A]:
    """The modality's ``example()`` validated into a :class:`~aip.config.Recipe` (the modality must be installed:
    the recipe names it, and the reader looks it up by that name)."""
    from aip.recipe import from_dict  # the reader loads modalities through the registry

    data = modality.example()
    _require(isinstance(data, dict) and isinstance(data.get("modality"), str), modality,
             "example() must return recipe data (a dict naming its 'modality')")
    return from_dict(data)


def check_one_batch(modality: Modality[S, A], recipe: Recipe[S, A], *, batch: int = 4, classes: int = 5,
                    device: torch.device = CPU) -> None:
    """One batch of ``batch`` views through sampler, augmenter, teacher and student on ``device``: the
    augmenter keeps the views' shape and float32 dtype, both models give finite ``(batch, classes)`` logits,
    and the student's loss back-propagates into its parameters."""
    _require(bool(modality.describe_source(recipe)), modality, "describe_source() returned nothing")
    torch.manual_seed(0)
    sampler, augmenter = modality.sampler(recipe, device=device), modality.augmenter(recipe, device=device)
    _require(isinstance(sampler, SourceSampler), modality, "sampler() must return an object with sample(batch_size)")
    _require(isinstance(augmenter, Augmenter), modality, "augmenter() must return a callable on a batch of views")
    views = sampler.sample(batch)
    _require(isinstance(views, torch.Tensor) and views.shape[0] == batch, modality,
             f"sampler.sample({batch}) must return a tensor of {batch} views, got "
             f"{getattr(views, 'shape', type(views).__name__)}")
    x = augmenter(views)
    _require(x.shape == views.shape, modality, f"the augmenter changed the views' shape {tuple(views.shape)} "
             f"to {tuple(x.shape)}")
    _require(x.dtype == torch.float32, modality, f"augmented views must be float32, got {x.dtype}")
    _require(bool(torch.isfinite(x).all()), modality, "the augmented views hold non-finite values")
    teacher = modality.model(recipe.teacher, recipe=recipe, num_classes=classes, pretrained=False).to(device).eval()
    student = modality.model(recipe.student, recipe=recipe, num_classes=classes, pretrained=False).to(device)
    with torch.no_grad():
        t = teacher(x)
    s = student(x)
    for role, logits in (("teacher", t), ("student", s)):
        _require(tuple(logits.shape) == (batch, classes), modality,
                 f"the {role} must return logits ({batch}, {classes}), got {tuple(logits.shape)}")
        _require(bool(torch.isfinite(logits).all()), modality, f"the {role}'s logits hold non-finite values")
    s.float().logsumexp(-1).sum().backward()  # the student trains: gradients reach its parameters
    _require(any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters()), modality,
             "no gradient reaches the student's parameters")


def check_capturable(modality: Modality[S, A], recipe: Recipe[S, A], *, batch: int = 4) -> bool:
    """Where the modality marks its sampler and augmenter capturable, check on the CPU that they read nothing
    from the device (:func:`aip.graphs.forbid_host_reads`), so a CUDA graph can capture them. Returns whether
    they are marked (``False``: nothing to check)."""
    sampler, augmenter = modality.sampler(recipe, device=CPU), modality.augmenter(recipe, device=CPU)
    if not graphs.capturable(sampler, augmenter):
        return False
    try:
        with graphs.forbid_host_reads():
            augmenter(sampler.sample(batch))
    except graphs.HostReadError as e:
        raise ConformanceError(f"modality {modality.name!r}: marks its data path capturable, but it reads the "
                               f"device from the host: {e}") from None
    return True


def check_modality(modality: Modality[S, A], recipe: Recipe[S, A] | None = None, *, batch: int = 4,
                   classes: int = 5) -> Recipe[S, A]:
    """Run every check of the contract on ``modality`` with ``recipe`` (default: its ``example()``), on the CPU.

    Returns:
        The recipe checked.

    Raises:
        ConformanceError: naming the modality and the first check it fails.
    """
    check_protocol(modality)
    recipe = example_recipe(modality) if recipe is None else recipe
    _require(recipe.modality == modality.name, modality,
             f"the recipe names modality {recipe.modality!r}, not {modality.name!r}")
    check_one_batch(modality, recipe, batch=batch, classes=classes)
    check_capturable(modality, recipe, batch=batch)
    return recipe
