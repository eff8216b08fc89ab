"""The toy plugin's own tests, as a third-party plugin would write them: aip's shipped contract checks
(:func:`aip.testing.check_modality`) on the installed modality, then a few checks of its own pieces.

Run them with the plugin installed (``pip install ./examples/aip-toy-plugin``): ``pytest tests/``.
"""

from __future__ import annotations

import pytest
import torch
from aip_toy import modality
from aip_toy.config import ToyAugmentConfig, ToySourceConfig

from aip.plugin import RecipeError
from aip.testing import check_modality, example_recipe

CPU = torch.device("cpu")


def test_the_toy_keeps_the_modality_contract() -> None:
    recipe = check_modality(modality)
    assert isinstance(recipe.source, ToySourceConfig) and isinstance(recipe.augment, ToyAugmentConfig)


def test_windows_are_random_views_of_one_signal() -> None:
    recipe = example_recipe(modality)
    sampler = modality.sampler(recipe, device=CPU)
    torch.manual_seed(0)
    a, b = sampler.sample(8), sampler.sample(8)
    assert a.shape == (8, 1, recipe.source.window) and a.dtype == torch.float32
    assert not torch.equal(a, b)  # a new draw each call, from torch's global RNG
    torch.manual_seed(0)
    assert torch.equal(sampler.sample(8), a)  # and only from it (checkpoints restore it)


def test_labelled_windows_have_the_views_shape() -> None:
    recipe = example_recipe(modality)
    data = modality.data(recipe, split="test", train=False)
    x, y = data.dataset[0]
    assert tuple(x.shape) == (1, recipe.source.window) and 0 <= y < data.num_classes == 4


def test_a_bad_value_names_its_key() -> None:
    with pytest.raises(RecipeError, match="recipe key source.window: must be at least 16 samples"):
        ToySourceConfig(window=8)
