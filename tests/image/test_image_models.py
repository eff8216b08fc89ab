"""The image model factory: every in-house net, the Normalized wrapper, torchvision and timm models, and
pretrained loading from pre-filled library caches (the real loaders, offline)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
import torchvision
from torch import nn

from aip.errors import AipError
from modalities.image import models
from modalities.image.models import MODELS, Normalized, build

GRAY = ([0.5], [0.25])
RGB = ([0.4, 0.5, 0.6], [0.2, 0.25, 0.3])
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def _build(arch: str, **overrides: object) -> nn.Module:
    args: dict = {"num_classes": 10, "in_channels": 3, "pretrained": False, "dataset_norm": RGB}
    args.update(overrides)
    return build(arch, **args)


@pytest.mark.parametrize(
    ("arch", "channels"),
    [(arch, 3) for arch in [*MODELS.names(), "wrn_10_1", "wrn_22_2"]]
    + [("cnn", 1), ("resnet20", 1), ("wrn_16_2", 1)],
)
def test_in_house_forward_and_backward(arch: str, channels: int) -> None:
    torch.manual_seed(0)
    model = _build(arch, in_channels=channels, num_classes=7, dataset_norm=GRAY if channels == 1 else RGB)
    x = torch.rand(2, channels, 32, 32)
    logits = model(x)
    assert logits.shape == (2, 7)
    logits.square().mean().backward()
    first = next(p for p in model.parameters() if p.ndim == 4)
    assert first.shape[1] == channels  # the stem takes the dataset's channels
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert first.grad.abs().sum() > 0


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_cnn_norms_and_28px(norm: str) -> None:
    model = _build("cnn", in_channels=1, dataset_norm=GRAY, kwargs={"norm": norm, "width": 12, "depth": 1,
                                                                       "dropout": 0.1})
    kinds = {type(m) for m in model.modules()}
    expected = {"batch": nn.BatchNorm2d, "group": nn.GroupNorm, "none": nn.Conv2d}[norm]
    assert expected in kinds
    if norm == "none":
        assert not kinds & {nn.BatchNorm2d, nn.GroupNorm}
    if norm == "group":  # largest group count <= 8 dividing the channels: 12 -> 6, 24 -> 8, 48 -> 8
        assert [m.num_groups for m in model.modules() if isinstance(m, nn.GroupNorm)] == [6, 8, 8]
    logits = model(torch.rand(2, 1, 28, 28))
    assert logits.shape == (2, 10)
    logits.sum().backward()


def test_cifar_resnet_shortcuts_and_width() -> None:
    a = _build("resnet20")
    b = _build("resnet20", kwargs={"shortcut": "B", "width": 2})
    n_a = sum(p.numel() for p in a.parameters())
    assert 0.26e6 < n_a < 0.28e6  # He et al.: ResNet-20 has 0.27M parameters
    assert sum(p.numel() for p in b.parameters()) > 3 * n_a
    assert b(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_wide_resnet_parameter_counts() -> None:
    counts = {arch: sum(p.numel() for p in _build(arch).parameters()) for arch in ("wrn_16_4", "wrn_40_4")}
    assert 2.7e6 < counts["wrn_16_4"] < 2.8e6 and 8.9e6 < counts["wrn_40_4"] < 9.0e6  # Zagoruyko & Komodakis
    assert any(isinstance(m, nn.Dropout) and m.p == 0.3
               for m in _build("wrn_16_2", kwargs={"dropout": 0.3}).modules())


@pytest.mark.parametrize(
    ("arch", "kwargs", "needle"),
    [
        ("cnn", {"widht": 16}, "'widht'"),
        ("cnn", {"norm": "layer"}, "norm must be"),
        ("resnet20", {"shortcut": "C"}, "shortcut"),
        ("wrn_16_4", {"width": 2}, "'width'"),
        ("wrn_17_4", {}, "6n+4"),
        ("wrn_16_0", {}, "6n+4"),
        ("resnt20", {}, "did you mean 'resnet20'"),
        ("no_such_model", {}, "timm:NAME"),
        ("resnet18", {"foo": 1}, "'foo'"),
        ("timm:test_resnet", {"foo": 1}, "'foo'"),
        ("timm:no_such_timm_model", {}, "unknown timm model"),
        ("cnn", {"num_classes": 3}, "'num_classes'"),
    ],
)
def test_bad_names_and_kwargs(arch: str, kwargs: dict, needle: str) -> None:
    with pytest.raises(AipError) as info:
        _build(arch, kwargs=kwargs)
    message = str(info.value)
    assert needle in message and "\n" not in message
    if "kwargs" in message or needle.startswith("'"):
        assert arch.removeprefix("timm:") in message


def test_in_house_has_no_pretrained_weights() -> None:
    with pytest.raises(AipError, match="no pretrained weights"):
        _build("wrn_16_4", pretrained=True)


def test_names_lists_in_house_and_families() -> None:
    listed = models.names()
    assert {"cnn", "resnet20", "resnet110", "wrn_16_4", "wrn_40_4", "wrn_28_10"} <= set(listed)
    assert "<any torchvision classification model>" in listed and "timm:<any timm model>" in listed


class _Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_normalized_normalises_by_hand() -> None:
    wrapped = Normalized(_Identity(), [0.5, 0.25, 0.0], [0.5, 0.25, 2.0])
    x = torch.tensor([1.0, 0.5, 1.0]).view(1, 3, 1, 1)
    assert torch.allclose(wrapped(x).flatten(), torch.tensor([1.0, 1.0, 0.5]))
    assert wrapped.mean.shape == wrapped.std.shape == (1, 3, 1, 1)
    assert {"mean", "std"} <= set(wrapped.state_dict())  # the stats travel with checkpoints


def test_normalized_repeats_gray_channels_and_stats() -> None:
    wrapped = Normalized(_Identity(), [0.5], [0.25], channels=3)
    out = wrapped(torch.full((2, 1, 4, 4), 0.75))
    assert out.shape == (2, 3, 4, 4) and torch.allclose(out, torch.ones_like(out))
    rgb = Normalized(_Identity(), *IMAGENET)
    out = rgb(torch.full((1, 1, 2, 2), 0.5))
    expected = (0.5 - torch.tensor(IMAGENET[0])) / torch.tensor(IMAGENET[1])
    assert torch.allclose(out[0, :, 0, 0], expected)


class _AuxOutputs(NamedTuple):  # like torchvision's GoogLeNetOutputs / InceptionOutputs in training mode
    logits: torch.Tensor
    aux_logits: torch.Tensor


class _WithAux(nn.Module):
    def __init__(self, as_tuple: bool) -> None:
        super().__init__()
        self.as_tuple = as_tuple

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        main, aux = x.mean(dim=(2, 3)), torch.zeros(len(x), 5)
        return (main, aux) if self.as_tuple else _AuxOutputs(main, aux)


@pytest.mark.parametrize("as_tuple", [False, True])
def test_normalized_takes_main_logits_of_multi_output_models(as_tuple: bool) -> None:
    wrapped = Normalized(_WithAux(as_tuple), [0.0, 0.0], [1.0, 1.0])
    x = torch.rand(4, 2, 3, 3)
    assert torch.equal(wrapped(x), x.mean(dim=(2, 3)))


def test_torchvision_from_scratch_gray_input() -> None:
    model = _build("resnet18", in_channels=1, dataset_norm=GRAY)
    assert isinstance(model, Normalized) and model.model.fc.out_features == 10
    assert torch.allclose(model.mean.flatten(), torch.full((3,), 0.5))  # dataset stats repeated to RGB
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 10)


def test_explicit_norm_wins() -> None:
    model = _build("resnet18", norm=([0.1, 0.2, 0.3], [0.4, 0.5, 0.6]))
    assert torch.allclose(model.std.flatten(), torch.tensor([0.4, 0.5, 0.6]))
    with pytest.raises(AipError, match="normalisation"):
        _build("cnn", in_channels=1, dataset_norm=GRAY, norm=RGB)


def test_timm_from_scratch() -> None:
    model = _build("timm:resnet10t", in_channels=1, num_classes=5, dataset_norm=GRAY)
    assert torch.allclose(model.mean.flatten(), torch.tensor([0.5]))  # not pretrained: dataset stats
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 5)


# ---------------------------------------------------------------------------------------------------------
# pretrained weights from pre-filled caches, loaded by the libraries' own code with no network


def _assert_same_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert set(state) <= set(loaded)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


def test_torchvision_pretrained_from_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, checkpoints / os.path.basename(weights.url))

    model = _build("resnet18", pretrained=True, weights="IMAGENET1K_V1", num_classes=1000, in_channels=1,
                   dataset_norm=GRAY)
    _assert_same_weights(model.model, state)
    assert torch.allclose(model.mean.flatten(), torch.tensor(IMAGENET[0]))
    assert torch.allclose(model.std.flatten(), torch.tensor(IMAGENET[1]))
    assert model.eval()(torch.rand(1, 1, 32, 32)).shape == (1, 1000)  # grayscale repeated into the RGB stem

    with pytest.raises(AipError) as info:
        _build("resnet18", pretrained=True, weights="DEFAULT", num_classes=10)
    assert str(info.value) == (
        "teacher resnet18 (IMAGENET1K_V1 weights) predicts 1000 classes but the dataset has 10: use weights "
        "trained on this dataset or teacher.kind = 'train'"
    )
    with pytest.raises(AipError, match="IMAGENET1K_V1"):
        _build("resnet18", pretrained=True, weights="IMAGENET22K", num_classes=1000)


def test_torchvision_pretrained_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    with pytest.raises(AipError, match="could not fetch pretrained weights for 'resnet18'"):
        _build("resnet18", pretrained=True, num_classes=1000)


def _no_network(url: str, *args: object, **kwargs: object) -> None:
    raise OSError(f"no network to fetch {url}")


TIMM_NAME = "test_resnet.r160_in1k"


@pytest.fixture()
def hf_offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face hub cache in offline mode.

    ``huggingface_hub.constants`` reads HF_HOME / HF_HUB_OFFLINE once at import, and ``hf_hub_download``
    reads ``constants.HF_HUB_CACHE`` and ``constants.is_offline_mode()`` at call time, so the constants are
    patched (monkeypatch restores them) and the environment is set to match.
    """
    from huggingface_hub import constants

    hub = tmp_path / "hf" / "hub"
    hub.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hub


def test_timm_pretrained_from_hf_cache(hf_offline_cache: Path) -> None:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    state = timm.create_model(TIMM_NAME, pretrained=False).state_dict()
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hf_offline_cache / f"models--timm--{TIMM_NAME}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))

    model = _build(f"timm:{TIMM_NAME}", pretrained=True, num_classes=1000, in_channels=1, dataset_norm=GRAY)
    _assert_same_weights(model.model, state)
    assert torch.allclose(model.mean.flatten(), torch.full((3,), 0.5))  # the weights' own stats
    assert model.eval()(torch.rand(1, 1, 32, 32)).shape == (1, 1000)

    with pytest.raises(AipError, match="predicts 1000 classes but the dataset has 10"):
        _build(f"timm:{TIMM_NAME}", pretrained=True, num_classes=10)
    with pytest.raises(AipError, match="no such pretrained weights"):
        _build("timm:test_resnet.no_such_tag", pretrained=True, num_classes=1000)


def test_timm_pretrained_not_cached(hf_offline_cache: Path) -> None:
    with pytest.raises(AipError, match="could not fetch pretrained weights") as info:
        _build(f"timm:{TIMM_NAME}", pretrained=True, num_classes=1000)
    assert "\n" not in str(info.value)


def test_a_grey_recipe_on_a_colour_dataset_builds_and_normalises_by_luma():
    """The offline default (``source.channels = 1``) pointed at a colour ``imagefolder``: the in-house models
    take one channel, normalised by the luma-weighted ImageNet statistics, as the dataset is read in grey."""
    from aip import recipe as recipe_mod
    from aip.registry import load_modality

    root = Path(__file__).resolve().parents[2]
    r = recipe_mod.load(root / "recipes" / "fashion-mnist.toml", ["eval.dataset=imagefolder"])
    modality = load_modality("image")
    for spec in (r.teacher, r.student):
        model = modality.model(spec, recipe=r, num_classes=3, pretrained=False)
        assert model(torch.rand(2, 1, 28, 28)).shape == (2, 3)
        assert model.mean.flatten().tolist() == pytest.approx([0.299 * 0.485 + 0.587 * 0.456 + 0.114 * 0.406])
