"""The synthetic:fractal source and dataset:train restricted to N images (source.train_items)."""

from __future__ import annotations

import pytest
import torch

from aip import recipe as recipe_mod
from aip.errors import AipError, RecipeError
from aip.sampling import subset_indices
from modalities.image.source import fractal, load_image_uri


def test_fractal_is_seeded_covers_part_of_the_canvas_and_differs_per_seed() -> None:
    a, b, c = fractal(128, seed=0), fractal(128, seed=0), fractal(128, seed=1)
    assert a.shape == (3, 128, 128) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    lit = (a.amax(0) > 0.02).float().mean().item()
    assert 0.02 < lit < 0.9  # a figure on black, neither empty nor a filled square
    # an attractor, not scattered dots: most lit pixels have a lit neighbour
    on = a.amax(0) > 0.02
    neighbour = on[1:, :] & on[:-1, :]
    assert neighbour.sum() > 0.5 * on[1:, :].sum()


def test_fractal_loads_as_a_source() -> None:
    img = load_image_uri("synthetic:fractal", size=32, synthetic_side=64, seed=3)
    assert img.shape == (3, 64, 64)
    assert torch.equal(img, fractal(64, seed=3))


def test_subset_indices_are_reproducible_nested_and_distinct() -> None:
    ten, hundred = subset_indices(1000, 10, seed=0), subset_indices(1000, 100, seed=0)
    assert torch.equal(ten, subset_indices(1000, 10, seed=0))
    assert torch.equal(ten, hundred[:10])
    assert len(set(hundred.tolist())) == 100
    assert not torch.equal(ten, subset_indices(1000, 10, seed=1))
    with pytest.raises(AipError, match="only 5 items"):
        subset_indices(5, 6, seed=0)


def test_train_items_restricts_the_dataset_sampler(tiny_recipe) -> None:
    from aip.registry import load_modality

    r = recipe_mod.load(tiny_recipe, ['source.uri="dataset:train"', "source.train_items=3", "source.seed=1"])
    modality = load_modality("image")
    sampler = modality.sampler(r, device=torch.device("cpu"))
    allowed = torch.stack([sampler.data[i][0] for i in range(3)])
    assert len(sampler.data) == 3
    torch.manual_seed(0)
    views = sampler.sample(16)
    for v in views:  # every view is one of the three images
        assert ((allowed - v).abs().flatten(1).amax(1) < 1e-6).any()
    with pytest.raises(RecipeError, match="train_items"):
        recipe_mod.load(tiny_recipe, ["source.train_items=3"])  # the photo source has no training images
