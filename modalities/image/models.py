"""Image classifiers by name: one factory, :func:`build`, for in-house nets, torchvision and timm models.

A recipe names a model with one string. In-house names (``cnn``, ``resnet20``, ``wrn_16_4``, any ``wrn_D_K``)
come from the :data:`MODELS` registry and are always trained from scratch; ``timm:NAME`` is any timm model
(``timm:resnet18.a1_in1k``); any other name is a torchvision classification model (``resnet18``), with
pretrained weights chosen by enum name (``DEFAULT``, ``IMAGENET1K_V1``). Every built model is wrapped in
:class:`Normalized`, so it takes raw images in ``[0, 1]`` (grayscale repeated to RGB where the model needs it)
and returns logits; the normalisation is the recipe's own, else the pretrained weights', else the dataset's.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torchvision
from torch import nn

from aip.errors import AipError, UsageError
from aip.registry import Registry
from modalities.image.cifar_nets import CifarResNet, Norm, Shortcut, SimpleCNN, WideResNet

Builder = Callable[..., nn.Module]
Stats = tuple[Sequence[float], Sequence[float]]

#: in-house architectures: ``builder(num_classes, in_channels, **kwargs) -> nn.Module``
MODELS: Registry[Builder] = Registry("model")

_WRN = re.compile(r"wrn_(\d+)_(\d+)")
_RESERVED = ("num_classes", "in_channels", "in_chans", "pretrained", "weights")


class Normalized(nn.Module):
    """Wraps a classifier so it takes raw images: ``(B, C, H, W)`` in ``[0, 1]`` -> logits ``(B, K)``.

    The input is normalised with the ``mean``/``std`` buffers (one value per channel the inner model takes).
    A one-channel input given to a model that takes more channels is repeated first, so a grayscale dataset
    can be fed to an RGB model. Models that return several outputs in training mode (torchvision's
    GoogLeNet and Inception) are reduced to their main logits.

    Args:
        model: the classifier, taking normalised inputs.
        mean: per-channel mean; a single value is repeated to ``channels``.
        std: per-channel standard deviation; a single value is repeated to ``channels``.
        channels: how many input channels ``model`` takes (default: ``len(mean)``).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], *,
                 channels: int | None = None) -> None:
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        channels = channels or mean_t.numel()
        if mean_t.numel() == 1:
            mean_t = mean_t.repeat(channels)
        if std_t.numel() == 1:
            std_t = std_t.repeat(channels)
        if not mean_t.numel() == std_t.numel() == channels:
            raise ValueError(f"mean and std need 1 or {channels} values, "
                             f"got {mean_t.numel()} and {std_t.numel()}")
        self.model = model
        self.register_buffer("mean", mean_t.view(1, channels, 1, 1))
        self.register_buffer("std", std_t.view(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = self.mean.shape[1]
        if x.shape[1] == 1 and channels > 1:  # grayscale into an RGB model: (B, 1, H, W) -> (B, 3, H, W)
            x = x.expand(-1, channels, -1, -1)
        out = self.model((x - self.mean) / self.std)
        if isinstance(out, torch.Tensor):
            return out
        if isinstance(getattr(out, "logits", None), torch.Tensor):  # GoogLeNetOutputs, InceptionOutputs
            return out.logits
        if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
            return out[0]
        raise TypeError(f"the model returned {type(out).__name__}, not a logits tensor")

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


# ---------------------------------------------------------------------------------------------------------
# in-house architectures


@MODELS.register("cnn")
def cnn(num_classes: int, in_channels: int, *, width: int = 32, norm: Norm = "batch", depth: int = 2,
        dropout: float = 0.0) -> nn.Module:
    """A small plain CNN for 28-32 px images (see :class:`~modalities.image.cifar_nets.SimpleCNN`).

    Args:
        width: channels of the first stage; the next two have 2x and 4x.
        norm: ``"batch"``, ``"group"`` or ``"none"``.
        depth: convolutions per stage.
        dropout: dropout before the linear classifier.
    """
    return SimpleCNN(num_classes, in_channels, width=width, norm=norm, depth=depth, dropout=dropout)


def _cifar_resnet(depth: int) -> Builder:
    def builder(num_classes: int, in_channels: int, *, width: int = 1, shortcut: Shortcut = "A") -> nn.Module:
        return CifarResNet(depth, num_classes, in_channels, width=width, shortcut=shortcut)

    builder.__doc__ = (f"ResNet-{depth} for CIFAR (He et al. 2016). kwargs: ``width`` (channel multiplier), "
                       f"``shortcut`` (``'A'`` zero-padding or ``'B'`` 1x1 conv).")
    return builder


def _wide_resnet(depth: int, widen: int) -> Builder:
    def builder(num_classes: int, in_channels: int, *, dropout: float = 0.0) -> nn.Module:
        return WideResNet(depth, widen, num_classes, in_channels, dropout=dropout)

    builder.__doc__ = f"WRN-{depth}-{widen} (Zagoruyko & Komodakis 2016). kwargs: ``dropout`` inside blocks."
    return builder


for _depth in (20, 32, 44, 56, 110):
    MODELS.register(f"resnet{_depth}")(_cifar_resnet(_depth))
for _depth, _widen in ((16, 2), (16, 4), (16, 8), (28, 10), (40, 1), (40, 2), (40, 4)):
    MODELS.register(f"wrn_{_depth}_{_widen}")(_wide_resnet(_depth, _widen))


def _in_house(arch: str) -> Builder | None:
    """The registered builder for ``arch``, a Wide ResNet builder for any valid ``wrn_D_K``, else None."""
    if arch in MODELS:
        return MODELS.get(arch)
    match = _WRN.fullmatch(arch)
    if match is None:
        return None
    depth, widen = int(match[1]), int(match[2])
    if depth < 10 or (depth - 4) % 6 or widen < 1:
        raise UsageError(f"model {arch!r}: a Wide ResNet's depth must be 6n+4 (10, 16, 22, 28, 40, ...) and "
                         f"its widen factor at least 1; use e.g. wrn_16_4 or wrn_40_4")
    return _wide_resnet(depth, widen)


def _build_in_house(arch: str, builder: Builder, *, num_classes: int, in_channels: int,
                    kwargs: dict[str, Any]) -> nn.Module:
    options = [p for p in inspect.signature(builder).parameters if p not in ("num_classes", "in_channels")]
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        allowed = ", ".join(options) or "none"
        raise UsageError(f"model {arch!r} has no option {unknown[0]!r} in its kwargs; its options: {allowed}")
    try:
        return builder(num_classes, in_channels, **kwargs)
    except (TypeError, ValueError) as e:
        raise UsageError(f"bad kwargs for model {arch!r}: {e}") from None


# ---------------------------------------------------------------------------------------------------------
# torchvision and timm


def _construct(arch: str, make: Callable[[], nn.Module], kwargs: dict[str, Any], *,
               cache: str | None = None) -> nn.Module:
    """Call a library factory, turning bad kwargs and failed weight downloads (from ``cache``, where the
    weights would be cached) into one-line errors."""
    try:
        return make()
    except (TypeError, ValueError) as e:
        if not kwargs:
            raise
        unexpected = re.search(r"unexpected keyword argument '(\w+)'", str(e))
        if unexpected:
            raise UsageError(f"model {arch!r} has no option {unexpected[1]!r} in its kwargs; remove it or use "
                             f"one of the model constructor's arguments") from None
        raise UsageError(f"bad kwargs for model {arch!r} ({_first_line(e)}); fix the model's kwargs") from None
    except OSError as e:  # no network and nothing cached, offline mode, HTTP errors
        if cache is None:
            raise
        raise AipError(f"could not fetch pretrained weights for {arch!r} ({_first_line(e)}); "
                       f"pre-fill {cache} while online") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _class_mismatch(arch: str, weights: str, predicted: int, num_classes: int) -> AipError:
    what = "has no classifier head" if predicted == 0 else f"predicts {predicted} classes"
    return AipError(f"teacher {arch} ({weights} weights) {what} but the dataset has {num_classes}: use "
                    f"weights trained on this dataset or teacher.kind = 'train'")


def _torchvision_names() -> list[str]:
    return torchvision.models.list_models(module=torchvision.models)


def torchvision_weights(arch: str, weights: str) -> Any:
    """The weights named ``weights`` ("DEFAULT", "IMAGENET1K_V1" or "ResNet18_Weights.IMAGENET1K_V1") of the
    torchvision model ``arch``, an image or a video one; a name it has not is one line listing those it has."""
    enum = torchvision.models.get_model_weights(arch)
    try:
        return enum[weights.rsplit(".", 1)[-1]]
    except KeyError:
        raise UsageError(f"torchvision model {arch!r} has no weights {weights!r}; choose one of: "
                         f"{', '.join(enum.__members__)}") from None


def weights_file(chosen: Any) -> str:
    """Where ``torch.hub`` keeps the downloaded file of the torchvision weights ``chosen`` (to pre-fill offline)."""
    return f"{torch.hub.get_dir()}/checkpoints/{chosen.url.rsplit('/', 1)[-1]}"


def _build_torchvision(arch: str, *, num_classes: int, pretrained: bool, weights: str,
                       kwargs: dict[str, Any]) -> tuple[nn.Module, Stats | None]:
    tvm = torchvision.models
    if not pretrained:
        return _construct(arch, lambda: tvm.get_model(arch, weights=None, num_classes=num_classes, **kwargs),
                          kwargs), None
    chosen = torchvision_weights(arch, weights)
    predicted = len(chosen.meta.get("categories") or [])
    if predicted != num_classes:
        raise _class_mismatch(arch, chosen.name, predicted, num_classes)
    cache = weights_file(chosen)
    model = _construct(arch, lambda: tvm.get_model(arch, weights=chosen, **kwargs), kwargs, cache=cache)
    preprocess = chosen.transforms()
    return model, (list(preprocess.mean), list(preprocess.std))


def _build_timm(name: str, *, num_classes: int, in_channels: int, pretrained: bool,
                kwargs: dict[str, Any]) -> tuple[nn.Module, int, Stats | None]:
    import timm  # imported here: it is slow to import and only timm models need it
    from timm.data import resolve_data_config
    from timm.models import get_pretrained_cfg

    arch = f"timm:{name}"
    base = name.split(".")[0]
    if not name or not timm.is_model(base):
        close = difflib.get_close_matches(base, timm.list_models(), n=1)
        hint = f" (did you mean 'timm:{close[0]}'?)" if close else ""
        raise UsageError(f"unknown timm model {name!r}{hint}; see timm.list_models() for the names")
    channels = in_channels
    if pretrained:
        if not timm.is_model_pretrained(name):
            tags = timm.list_pretrained(f"{base}.*")
            if not tags:
                raise UsageError(f"timm model {name!r} has no pretrained weights; build it from scratch or "
                                 f"pick another model (timm.list_pretrained())")
            raise UsageError(f"timm model {name!r} has no such pretrained weights; its tags: "
                             f"{', '.join(tags[:8])}")
        cfg = get_pretrained_cfg(name)
        assert cfg is not None  # is_model_pretrained said so
        if cfg.num_classes != num_classes:
            raise _class_mismatch(arch, cfg.tag or "pretrained", cfg.num_classes, num_classes)
        channels = cfg.input_size[0]  # keep the pretrained stem; Normalized repeats grayscale inputs
    model = _construct(arch, lambda: timm.create_model(name, pretrained=pretrained, num_classes=num_classes,
                                                       in_chans=channels, **kwargs),
                       kwargs, cache="the Hugging Face cache (HF_HOME; unset HF_HUB_OFFLINE to download)"
                       if pretrained else None)
    if not pretrained:
        return model, channels, None
    data = resolve_data_config({}, model=model)
    return model, channels, (list(data["mean"]), list(data["std"]))


# ---------------------------------------------------------------------------------------------------------
# the factory


def build(arch: str, *, num_classes: int, in_channels: int, pretrained: bool, weights: str = "DEFAULT",
          kwargs: dict[str, Any] | None = None, norm: Stats | None = None, dataset_norm: Stats) -> nn.Module:
    """Build the classifier named ``arch``, wrapped in :class:`Normalized` to take raw ``[0, 1]`` images.

    Args:
        arch: an in-house name (:func:`names`), ``timm:NAME`` or a torchvision classification model name.
        num_classes: classes of the target dataset; pretrained weights must predict exactly these.
        in_channels: channels of the dataset's images (1 or 3). In-house and from-scratch timm models are
            built for them; pretrained and torchvision models keep their RGB stem and see repeated channels.
        pretrained: load library weights (torchvision or timm only).
        weights: torchvision weights enum name (``"DEFAULT"``, ``"IMAGENET1K_V1"``); timm takes the tag from
            the name (``timm:resnet18.a1_in1k``).
        kwargs: extra constructor arguments (in-house builder, ``timm.create_model`` or
            ``torchvision.models.get_model``).
        norm: explicit ``(mean, std)`` from the recipe; wins over everything else.
        dataset_norm: the dataset's ``(mean, std)``, used when neither ``norm`` nor pretrained stats exist.

    Returns:
        A :class:`Normalized` model mapping ``(B, in_channels, H, W)`` to logits ``(B, num_classes)``.

    Raises:
        AipError: unknown name, bad kwargs, missing weights, or weights for a different number of classes.
    """
    kwargs = dict(kwargs or {})
    reserved = [key for key in _RESERVED if key in kwargs]
    if reserved:
        raise UsageError(f"model {arch!r}: {reserved[0]!r} cannot be set in kwargs; aip sets it from the "
                         f"dataset and the recipe (weights, teacher.kind)")
    if in_channels < 1:
        raise UsageError(f"model {arch!r}: in_channels must be at least 1, got {in_channels}")
    stats: Stats | None = None
    if arch.startswith("timm:"):
        model, channels, stats = _build_timm(arch.removeprefix("timm:"), num_classes=num_classes,
                                             in_channels=in_channels, pretrained=pretrained, kwargs=kwargs)
    elif (builder := _in_house(arch)) is not None:
        if pretrained:
            raise UsageError(f"in-house model {arch!r} has no pretrained weights: train it (teacher.kind = "
                             f"'train'), load a checkpoint (teacher.kind = 'checkpoint') or pick a library "
                             f"model")
        model = _build_in_house(arch, builder, num_classes=num_classes, in_channels=in_channels,
                                kwargs=kwargs)
        channels = in_channels
    elif arch in _torchvision_names():
        model, stats = _build_torchvision(arch, num_classes=num_classes, pretrained=pretrained,
                                          weights=weights, kwargs=kwargs)
        channels = 3
    else:
        close = difflib.get_close_matches(arch, MODELS.names() + _torchvision_names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"unknown model {arch!r}{hint}; in-house models: {', '.join(MODELS.names())}, "
                         f"wrn_<6n+4>_<k>; or any torchvision classification model "
                         f"(torchvision.models.list_models()) or 'timm:NAME' (timm.list_models())")
    if in_channels not in (1, channels):
        raise AipError(f"model {arch!r} takes {channels}-channel images but the dataset has {in_channels} "
                       f"channels")
    if norm is not None and len(norm[0]) > 0:
        stats = norm
    elif stats is None:
        stats = dataset_norm
    mean, std = [float(v) for v in stats[0]], [float(v) for v in stats[1]]
    if len(mean) != len(std) or len(mean) not in (1, channels):
        raise UsageError(f"model {arch!r} takes {channels}-channel images but the normalisation has "
                         f"{len(mean)} mean and {len(std)} std values; give 1 or {channels} of each")
    if min(std) <= 0:
        raise UsageError(f"model {arch!r}: normalisation std must be positive, got {std}")
    return Normalized(model, mean, std, channels=channels)


def names() -> list[str]:
    """Model names for ``aip list``: the in-house ones plus the torchvision and timm families."""
    families = ["wrn_<6n+4>_<k>", "<any torchvision classification model>", "timm:<any timm model>"]
    return [*MODELS.names(), *families]
