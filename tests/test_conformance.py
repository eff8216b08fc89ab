"""Every installed modality keeps the contract of :class:`aip.modality.Modality`: its example recipe validates,
and one batch goes through sampler, augmenter, teacher and student with finite logits of matching shapes.

A new plugin gets these tests for free: it only has to be installed (the toy plugin is checked the same way
in tests/test_plugin.py, from its own installed copy).
"""

from __future__ import annotations

import pytest
import torch

from aip import graphs
from aip import recipe as R
from aip.modality import Augmenter, Modality, SourceSampler
from aip.registry import installed_modalities, load_modality
from aip.teacher import build_model

CPU = torch.device("cpu")


@pytest.fixture(params=installed_modalities())
def modality(request) -> Modality:
    return load_modality(request.param)


def test_it_implements_the_protocol(modality):
    assert isinstance(modality, Modality)
    catalog = modality.catalog()
    assert {"models", "datasets", "sources"} <= set(catalog) and all(catalog.values())


def test_one_batch_through_sampler_augmenter_teacher_and_student(modality):
    recipe = R.from_dict(modality.example())
    assert recipe.modality == modality.name or recipe.modality in installed_modalities()
    assert modality.describe_source(recipe)
    torch.manual_seed(0)
    sampler, augmenter = modality.sampler(recipe, device=CPU), modality.augmenter(recipe, device=CPU)
    assert isinstance(sampler, SourceSampler) and isinstance(augmenter, Augmenter)
    views = sampler.sample(4)
    x = augmenter(views)
    assert x.shape == views.shape and x.dtype == torch.float32 and torch.isfinite(x).all()
    classes = 5
    teacher = build_model(modality, recipe, recipe.teacher, num_classes=classes, pretrained=False).eval()
    student = build_model(modality, recipe, recipe.student, num_classes=classes, pretrained=False)
    with torch.no_grad():
        t = teacher(x)
    s = student(x)
    assert t.shape == s.shape == (4, classes)
    assert torch.isfinite(t).all() and torch.isfinite(s).all()
    s.float().logsumexp(-1).sum().backward()  # the student trains: gradients reach its parameters
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_parts_marked_capturable_read_nothing_back(modality):
    """Where a modality marks its sampler and augmenter capturable, they really read nothing from the device
    (checked on the CPU with graphs.forbid_host_reads), so a CUDA graph can capture them."""
    recipe = R.from_dict(modality.example())
    sampler, augmenter = modality.sampler(recipe, device=CPU), modality.augmenter(recipe, device=CPU)
    if not graphs.capturable(sampler, augmenter):
        pytest.skip(f"modality {modality.name!r} does not mark its data path capturable")
    with graphs.forbid_host_reads():
        augmenter(sampler.sample(4))
