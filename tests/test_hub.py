"""``aip.hub.load_hub`` against a pre-filled torch.hub cache: a fake GitHub repository checkout with a
``hubconf.py`` and its weights in ``checkpoints/``, loaded offline by torch.hub's own code."""

from __future__ import annotations

import textwrap
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from torch import nn

from aip.errors import AipError
from aip.hub import load_hub

URL = "https://example.com/cifarnets/tiny-0123abcd.pth"

HUBCONF = f'''
"""A tiny torch.hub repository, as published on GitHub."""
import torch
from torch import nn

dependencies = ["torch"]


def tiny(pretrained=False, num_classes=10):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, num_classes))
    if pretrained:
        model.load_state_dict(torch.hub.load_state_dict_from_url("{URL}", map_location="cpu", progress=False))
    return model


def not_a_model(pretrained=False):
    return {{"weights": None}}
'''


def _tiny(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))


def _offline(url: object, *args: object, **kwargs: object) -> None:
    raise URLError("no network in this test")


@pytest.fixture()
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.Tensor]:
    """``$TORCH_HOME/hub`` holding the ``someowner/cifarnets`` master checkout and its weights, with every
    network call of torch.hub failing as it does offline. Returns the cached state dict."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "urlopen", _offline)  # the default-branch probe (main or master?)
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)  # repository archives and weights
    hub = Path(torch.hub.get_dir())
    assert hub == tmp_path / "hub"
    repo = hub / "someowner_cifarnets_master"
    repo.mkdir(parents=True)
    (repo / "hubconf.py").write_text(textwrap.dedent(HUBCONF))
    (hub / "checkpoints").mkdir()
    torch.manual_seed(0)
    state = _tiny().state_dict()
    torch.save(state, hub / "checkpoints" / "tiny-0123abcd.pth")
    return state


@pytest.mark.parametrize("repo", ["someowner/cifarnets", "someowner/cifarnets:master"])
def test_loads_cached_repo_and_weights_offline(hub_cache: dict[str, torch.Tensor], repo: str) -> None:
    model = load_hub(repo, "tiny")
    loaded = model.state_dict()
    assert loaded.keys() == hub_cache.keys()
    assert all(torch.equal(loaded[k], v) for k, v in hub_cache.items())
    assert model(torch.rand(2, 3, 8, 8)).shape == (2, 10)


def test_passes_kwargs_to_the_entry(hub_cache: dict[str, torch.Tensor]) -> None:
    model = load_hub("someowner/cifarnets", "tiny", pretrained=False, num_classes=3)
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3)


@pytest.mark.parametrize(
    ("repo", "entry", "needle"),
    [
        ("otherowner/uncached", "tiny", "otherowner/uncached:tiny"),
        ("otherowner/uncached:main", "tiny", "otherowner/uncached:main:tiny"),
        ("someowner/cifarnets", "tiny2", "tiny2"),
        ("someowner/cifarnets", "not_a_model", "not a model"),
    ],
)
def test_errors_are_one_line(hub_cache: dict[str, torch.Tensor], repo: str, entry: str, needle: str) -> None:
    with pytest.raises(AipError) as info:
        load_hub(repo, entry)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_missing_weights_name_the_cache(hub_cache: dict[str, torch.Tensor]) -> None:
    (Path(torch.hub.get_dir()) / "checkpoints" / "tiny-0123abcd.pth").unlink()
    with pytest.raises(AipError, match="pre-fill") as info:
        load_hub("someowner/cifarnets", "tiny")
    assert "\n" not in str(info.value)
