"""Video classifiers by name: PyTorchVideo X3D / Slow R50 (hub weights), torchvision video models, small 3-D CNNs.

Every model is wrapped in :class:`VideoClassifier`, which takes clips ``(B, C, T, H, W)`` in ``[0, 1]`` as the
sampler and the datasets make them, resamples them to the frame count and crop size the model needs (temporal
index selection, bilinear resize: each teacher's own frame sampling, so teacher and student see the same clip),
normalises them and returns logits. PyTorchVideo heads end in a softmax; it is removed, so models give logits.

Names: ``x3d`` (X3D built for the recipe's clips; ``width_factor``/``depth_factor`` in ``kwargs``), ``x3d_xs_e``
(the paper's expanded student: width 5.0, depth 3.0, no dropout), the PyTorchVideo hub models ``x3d_xs``,
``x3d_s``, ``x3d_m``, ``x3d_l`` and ``slow_r50`` (Kinetics-400 weights with ``teacher.kind = "pretrained"``),
torchvision's video models (``r2plus1d_18``, ``r3d_18``, ``mc3_18``, ``s3d``, ``mvit_v1_b``, ``mvit_v2_s``,
``swin3d_t/s/b``) and ``cnn3d``, a small 3-D CNN for tiny clips.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from aip.errors import AipError, UsageError
from aip.registry import Registry

KINETICS_MEAN, KINETICS_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


class VideoClassifier(nn.Module):
    """``(B, C, T, H, W)`` in [0, 1] -> logits ``(B, K)``: resample to the model's input, normalise, classify.

    Args:
        model: a video classifier taking normalised ``(B, 3, frames, size, size)`` clips.
        mean, std: per-channel normalisation.
        frames: the frame count the model takes; other clips are resampled by uniform index selection (None:
            any count).
        size: the crop side the model takes; other clips are resized (None: any size).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], *, frames: int | None = None,
                 size: int | None = None) -> None:
        super().__init__()
        self.model, self.frames, self.size = model, frames, size
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        if self.frames is not None and t != self.frames:  # (B, C, T, H, W) -> (B, C, frames, H, W)
            idx = torch.linspace(0, t - 1, self.frames, device=x.device).round().long()
            x = x.index_select(2, idx)
            t = self.frames
        if self.size is not None and (h, w) != (self.size, self.size):
            frames = x.transpose(1, 2).reshape(b * t, c, h, w)
            frames = F.interpolate(frames, size=(self.size, self.size), mode="bilinear", antialias=h > self.size,
                                   align_corners=False)
            x = frames.reshape(b, t, c, self.size, self.size).transpose(1, 2)
        out = self.model((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))
        if isinstance(out, torch.Tensor):
            return out
        raise TypeError(f"the model returned {type(out).__name__}, not a logits tensor")

    def extra_repr(self) -> str:
        return f"frames={self.frames}, size={self.size}"


@dataclass(frozen=True)
class Spec:
    """What a builder makes: the bare model and the input it expects."""

    model: nn.Module
    mean: Sequence[float] = KINETICS_MEAN
    std: Sequence[float] = KINETICS_STD
    frames: int | None = None
    size: int | None = None


#: ``builder(*, num_classes, pretrained, frames, size, weights, kwargs) -> Spec``
Builder = Callable[..., Spec]

#: every model a recipe can name
MODELS: Registry[Builder] = Registry("video model")
#: models that only exist untrained (no library weights)
SCRATCH_ONLY = ("cnn3d", "x3d", "x3d_xs_e")


def _logits_head(model: nn.Module) -> nn.Module:
    """Remove PyTorchVideo's head softmax so the model returns logits."""
    from pytorchvideo.models.head import ResNetBasicHead

    for m in model.modules():
        if isinstance(m, ResNetBasicHead):
            m.activation = None
    return model


#: PyTorchVideo hub X3D variants: (frames, crop size, depth factor); all have width factor 2.0
X3D_HUB = {"x3d_xs": (4, 160, 2.2), "x3d_s": (13, 160, 2.2), "x3d_m": (16, 224, 2.2), "x3d_l": (16, 312, 5.0)}
#: torchvision video models: (frames, size) of their Kinetics weights, and whether they take only that shape
TORCHVISION = {"r3d_18": (16, 112, False), "mc3_18": (16, 112, False), "r2plus1d_18": (16, 112, False),
               "s3d": (16, 224, True), "mvit_v1_b": (16, 224, True), "mvit_v2_s": (16, 224, True),
               "swin3d_t": (16, 224, False), "swin3d_s": (16, 224, False), "swin3d_b": (16, 224, False)}


def _x3d(*, num_classes: int, frames: int, size: int, **kwargs: Any) -> Spec:
    from pytorchvideo.models.x3d import create_x3d

    kwargs.setdefault("dropout_rate", 0.0)
    model = create_x3d(input_clip_length=frames, input_crop_size=size, model_num_class=num_classes,
                       head_activation=None, **kwargs)
    return Spec(model, frames=frames, size=None)


def _hub(name: str, *, num_classes: int, pretrained: bool, frames: int, size: int, kwargs: dict[str, Any],
         **_: Any) -> Spec:
    """A PyTorchVideo hub model: Kinetics-400 weights (fixed input) or the same architecture from scratch."""
    from pytorchvideo.models import hub

    if pretrained:
        if kwargs:
            raise UsageError(f"model {name!r} with pretrained weights takes no kwargs (got {sorted(kwargs)})")
        if num_classes != 400:
            raise _class_mismatch(name, num_classes)
        model = _logits_head(getattr(hub, name)(pretrained=True))
        native = X3D_HUB.get(name, (8, 224, 0.0))
        return Spec(model, frames=native[0], size=native[1])
    if name in X3D_HUB:  # the architecture built for the recipe's clips
        depth = X3D_HUB[name][2]
        return _x3d(num_classes=num_classes, frames=frames, size=size, **{"depth_factor": depth, **kwargs})
    model = _logits_head(getattr(hub, name)(pretrained=False, model_num_class=num_classes, **kwargs))
    return Spec(model, frames=8, size=224)  # slow_r50's head pools a fixed 8 x 7 x 7 grid


def _torchvision(name: str, *, num_classes: int, pretrained: bool, weights: str, kwargs: dict[str, Any],
                 **_: Any) -> Spec:
    import torchvision

    from modalities.image.models import torchvision_weights, weights_file

    tvm = torchvision.models
    enum = tvm.get_model_weights(name)
    frames, size, fixed = TORCHVISION[name]
    if not pretrained:
        preprocess = enum["DEFAULT"].transforms()
        model = tvm.get_model(name, weights=None, num_classes=num_classes, **kwargs)
        return Spec(model, list(preprocess.mean), list(preprocess.std), frames if fixed else None,
                    size if fixed else None)
    chosen = torchvision_weights(name, weights)
    if len(chosen.meta["categories"]) != num_classes:
        raise _class_mismatch(name, num_classes)
    try:
        model = tvm.get_model(name, weights=chosen, **kwargs)
    except OSError as e:
        cache = weights_file(chosen)
        raise AipError(f"could not fetch pretrained weights for {name!r} ({str(e).splitlines()[0]}); "
                       f"pre-fill {cache} while online") from None
    preprocess = chosen.transforms()
    return Spec(model, list(preprocess.mean), list(preprocess.std), frames, size)


class Cnn3d(nn.Module):
    """A small plain 3-D CNN for tiny clips: three conv-BN-ReLU stages (``width``, 2x, 4x channels), spatial
    pooling between them, global pooling over time and space and a linear classifier.

    ``pool``: ``"mean"`` averages the last features over the clip; ``"max"`` keeps each feature's strongest
    response, so a motion that fills a small part of the frame (an object over a moving background) is not
    averaged away by the rest. Both have the same weights.
    """

    def __init__(self, num_classes: int, *, width: int = 16, pool: str = "mean") -> None:
        super().__init__()
        if pool not in ("mean", "max"):
            raise UsageError(f"model 'cnn3d': pool must be 'mean' or 'max', got {pool!r}; fix teacher/student kwargs")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise UsageError(f"model 'cnn3d': width must be a positive integer, got {width!r}; fix teacher/student "
                             "kwargs")
        self.pool = pool
        layers: list[nn.Module] = []
        c_in = 3
        for i, c in enumerate((width, 2 * width, 4 * width)):
            layers += [nn.Conv3d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm3d(c), nn.ReLU(inplace=True)]
            if i < 2:
                layers.append(nn.MaxPool3d((1, 2, 2)))
            c_in = c
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (B, 4 * width, T, H / 4, W / 4)
        return self.fc(h.mean(dim=(2, 3, 4)) if self.pool == "mean" else h.amax(dim=(2, 3, 4)))


def _class_mismatch(name: str, num_classes: int) -> AipError:
    return AipError(f"teacher {name} has Kinetics-400 weights (400 classes) but the dataset has {num_classes}: "
                    f"use weights trained on this dataset (teacher.kind = 'checkpoint') or teacher.kind = 'train'")


MODELS.register("cnn3d")(lambda *, num_classes, kwargs, **_: Spec(Cnn3d(num_classes, **kwargs)))
MODELS.register("x3d")(lambda *, num_classes, frames, size, kwargs, **_: _x3d(
    num_classes=num_classes, frames=frames, size=size, **kwargs))
MODELS.register("x3d_xs_e")(lambda *, num_classes, frames, size, kwargs, **_: _x3d(  # the paper's student
    num_classes=num_classes, frames=frames, size=size, **{"width_factor": 5.0, "depth_factor": 3.0, **kwargs}))
for _name in (*X3D_HUB, "slow_r50"):
    MODELS.register(_name)(partial(_hub, _name))
for _name in TORCHVISION:
    MODELS.register(_name)(partial(_torchvision, _name))


def names() -> list[str]:
    """Every model name a recipe can use."""
    return MODELS.names()


def build(arch: str, *, num_classes: int, frames: int, size: int, pretrained: bool, weights: str = "DEFAULT",
          kwargs: dict[str, Any] | None = None, norm: tuple[Sequence[float], Sequence[float]] | None = None
          ) -> VideoClassifier:
    """Build the video classifier ``arch`` for clips of ``frames`` x ``size`` x ``size``.

    Args:
        arch: a name from :func:`names`.
        num_classes: classes of the target dataset; pretrained weights must predict exactly these.
        frames, size: the recipe's clip shape (models built for it take it as is; others resample it).
        pretrained: load library weights (hub and torchvision models only).
        weights: torchvision weights enum name (``"DEFAULT"``, ``"KINETICS400_V1"``).
        kwargs: constructor options (``create_x3d``'s ``width_factor``, ``depth_factor``, ...).
        norm: explicit ``(mean, std)`` from the recipe; wins over the model's own.

    Raises:
        AipError: unknown name, bad kwargs, missing weights, weights for another class count, or a clip
            shape the model cannot take.
    """
    kwargs = dict(kwargs or {})
    for key in ("num_classes", "model_num_class", "input_clip_length", "input_crop_size", "pretrained"):
        if key in kwargs:
            raise UsageError(f"model {arch!r}: {key!r} cannot be set in kwargs; aip sets it from the recipe")
    builder = MODELS.get(arch)  # an unknown name: AipError listing the known ones
    if pretrained and arch in SCRATCH_ONLY:
        raise UsageError(f"model {arch!r} has no pretrained weights: train it (teacher.kind = 'train'), load a "
                         f"checkpoint (teacher.kind = 'checkpoint') or pick x3d_xs, slow_r50, r2plus1d_18, ...")
    if arch.startswith("x3d") and not pretrained and size < 32:
        raise UsageError(f"model {arch!r} needs clips of at least 32 px (it downsamples 32x); source.size is {size}")
    try:
        spec = builder(num_classes=num_classes, pretrained=pretrained, frames=frames, size=size, weights=weights,
                       kwargs=kwargs)
    except OSError as e:  # no network and nothing cached
        raise AipError(f"could not fetch pretrained weights for {arch!r} ({str(e).splitlines()[0]}); pre-fill "
                       f"{torch.hub.get_dir()}/checkpoints while online") from None
    except (TypeError, ValueError) as e:
        raise UsageError(f"bad kwargs for model {arch!r} ({str(e).splitlines()[0]}); fix the model's kwargs") from None
    mean, std = (norm if norm is not None and len(norm[0]) else (spec.mean, spec.std))
    if len(mean) not in (1, 3) or len(std) != len(mean) or min(std) <= 0:
        raise UsageError(f"model {arch!r}: normalisation needs 1 or 3 mean values and as many positive std values")
    return VideoClassifier(spec.model, list(mean) * (3 // len(mean)), list(std) * (3 // len(std)),
                           frames=spec.frames, size=spec.size)
