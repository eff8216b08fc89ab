"""The image modality's recipe sections: ``[source]`` (how views are cut from the one image) and
``[augment]`` (training-time augmentation applied to every batch, CutMix included)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aip.schema import check, check_beta, check_probability


@dataclass(frozen=True)
class ImageSourceConfig:
    """Where the single image comes from and how views ("patches") are cut from it.

    Defaults follow the paper's patch generator: an initial random crop of half the short side, a random
    resized crop of scale 1/500..1 at sqrt(2) x the view size, rotation and shear up to 30 degrees, a centre
    crop back to ``size``, and colour jitter with probability 0.5. All of it runs batched on the device.

    ``zoom_out`` (not in the paper, off by default): with probability ``zoom_out_p`` a view is shrunk by a
    factor drawn from ``zoom_out`` and placed at a random position on a black canvas, like an object on an
    empty background (Fashion-MNIST's, MNIST's).

    ``uri``: a file path, an ``http(s)`` URL (downloaded once into the cache), ``skimage:NAME`` (a photo that
    ships with scikit-image), ``synthetic:noise``, ``synthetic:dead_leaves``, ``synthetic:fractal`` (a random
    iterated-function-system fractal, FractalDB's idea) or ``dataset:train`` (the labelled dataset's own
    training images, labels unused: the upper-bound baseline). ``seed`` draws the synthetic images.

    ``train_items`` (``dataset:train`` only): use just this many training images, chosen reproducibly from
    ``seed`` (the paper's Table 1 "one image vs N images" rows); 0 uses them all.

    ``levels`` (not in the paper): ``"stretch"`` (the default) maps the picture's 0.5th and 99.5th percentiles
    of brightness to black and white, one linear map for all channels so hues stay, before views are cut: a dark
    or washed-out photo then gives the views a well-exposed one would (``"keep"``: the pixels as they are).
    Synthetic sources are made at full range and kept as they are.
    """

    uri: str = "skimage:astronaut"
    size: int = 32
    channels: Literal[1, 3] = 3
    max_side: int = 2048
    synthetic_side: int = 1024
    init_crop: float = 0.5
    scale: tuple[float, float] = (0.002, 1.0)
    ratio: tuple[float, float] = (0.75, 4 / 3)
    degrees: float = 30.0
    shear: float = 30.0
    vflip: float = 0.0
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.5
    zoom_out: tuple[float, float] = (1.0, 1.0)
    zoom_out_p: float = 0.0
    seed: int = 0
    train_items: int = 0
    levels: Literal["stretch", "keep"] = "stretch"

    def __post_init__(self) -> None:
        check(self.size >= 8, "source.size", "must be at least 8 pixels")
        check(self.max_side == 0 or self.max_side >= self.size, "source.max_side",
              "must be 0 (keep the image as it is) or at least source.size")
        check(self.synthetic_side >= self.size, "source.synthetic_side", "must be at least source.size")
        check(0 <= self.init_crop <= 1, "source.init_crop", "must be in [0, 1] (0 disables the initial crop)")
        check(0 < self.scale[0] <= self.scale[1] <= 1, "source.scale", "must satisfy 0 < min <= max <= 1")
        check(0 < self.ratio[0] <= self.ratio[1], "source.ratio", "must satisfy 0 < min <= max")
        check(0 <= self.degrees <= 180, "source.degrees", "must be in [0, 180]")
        check(0 <= self.shear < 90, "source.shear", "must be in [0, 90)")
        check_probability(self.vflip, "source.vflip")
        check_probability(self.jitter_p, "source.jitter_p")
        check(0 < self.zoom_out[0] <= self.zoom_out[1] <= 1, "source.zoom_out", "must satisfy 0 < min <= max <= 1")
        check(self.train_items >= 0, "source.train_items", "must be >= 0 (0 uses every training image)")
        check(self.train_items == 0 or self.uri == "dataset:train", "source.train_items",
              "applies only to source.uri = 'dataset:train'; remove it or set 0")
        check_probability(self.zoom_out_p, "source.zoom_out_p")
        check(all(j >= 0 for j in self.jitter) and self.jitter[3] <= 0.5, "source.jitter",
              "is [brightness, contrast, saturation, hue], all >= 0 and hue <= 0.5")


@dataclass(frozen=True)
class ImageAugmentConfig:
    """Training-time augmentation of each batch of views, with per-sample random parameters.

    ``crop``: ``rrc`` (random resized crop, scale ``crop_scale``), ``pad`` (pad ``pad`` pixels and random
    crop, the CIFAR recipe) or ``none``. ``cutmix`` is the Beta(alpha, alpha) parameter of CutMix, applied
    to every batch with probability ``cutmix_p`` (0 disables it). Teacher and student see the same result.
    """

    crop: Literal["rrc", "pad", "none"] = "rrc"
    crop_scale: tuple[float, float] = (0.08, 1.0)
    pad: int = 4
    hflip: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.4)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    solarize_p: float = 0.2
    cutmix: float = 1.0
    cutmix_p: float = 1.0

    def __post_init__(self) -> None:
        check(0 < self.crop_scale[0] <= self.crop_scale[1] <= 1, "augment.crop_scale",
              "must satisfy 0 < min <= max <= 1")
        check(self.pad >= 0, "augment.pad", "must be >= 0")
        for key in ("hflip", "jitter_p", "grayscale_p", "solarize_p", "cutmix_p"):
            check_probability(getattr(self, key), f"augment.{key}")
        check_beta(self.cutmix, "augment.cutmix")
        check(all(j >= 0 for j in self.jitter) and self.jitter[3] <= 0.5, "augment.jitter",
              "is [brightness, contrast, saturation, hue], all >= 0 and hue <= 0.5")
