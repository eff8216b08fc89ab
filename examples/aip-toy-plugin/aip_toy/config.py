"""The toy modality's recipe sections: ``[source]`` (the one long signal and the windows cut from it) and
``[augment]`` (per-sample augmentation of every batch of windows, CutMix along time included).

Both are frozen dataclasses. The core builds them with :func:`aip.schema.build`, which checks every key and
its type against the annotations; ``__post_init__`` adds the value checks, with :func:`aip.schema.check`, so
errors read like the core's own: ``recipe key source.window: must be at least 16 samples``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aip.plugin import check, check_beta, check_probability


@dataclass(frozen=True)
class ToySourceConfig:
    """The single datum: one long synthetic signal, and the windows the sampler cuts from it.

    ``kind``: ``sines`` (a sum of ``components`` sinusoids, log-spaced in frequency, each with its own slowly
    drifting random envelope, so that a different one dominates from place to place) or ``random_walk`` (one
    oscillation whose log-frequency performs a random walk, reflected at the edges of the band range).
    ``length`` samples are generated from ``seed``; the sampler cuts windows of ``window`` samples.
    """

    kind: Literal["sines", "random_walk"] = "sines"
    length: int = 65_536
    window: int = 128
    components: int = 24
    noise: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.window >= 16, "source.window", "must be at least 16 samples")
        check(self.length >= 2 * self.window, "source.length", "must be at least twice source.window")
        check(self.length <= 50_000_000, "source.length", "must be at most 50,000,000 samples")
        check(self.components >= 1, "source.components", "must be at least 1")
        check(self.noise >= 0, "source.noise", "is a standard deviation, >= 0")


@dataclass(frozen=True)
class ToyAugmentConfig:
    """Training-time augmentation of each batch of windows ``(B, 1, W)``, random per sample.

    ``gain``: amplitude factor drawn log-uniformly in ``[min, max]``. ``shift``: circular time shift of up to
    this fraction of the window. ``flip``: probability of reversing time. ``noise``: standard deviation of
    additive Gaussian noise, relative to each window's own standard deviation. ``cutmix``: Beta(alpha, alpha)
    parameter of CutMix along time (a random segment is pasted from a random partner), applied to a sample
    with probability ``cutmix_p``; 0 disables it. Teacher and student see the same result.
    """

    gain: tuple[float, float] = (0.5, 2.0)
    shift: float = 0.5
    flip: float = 0.5
    noise: float = 0.05
    cutmix: float = 1.0
    cutmix_p: float = 0.5

    def __post_init__(self) -> None:
        check(0 < self.gain[0] <= self.gain[1], "augment.gain", "must satisfy 0 < min <= max")
        check(0 <= self.shift <= 1, "augment.shift", "is a fraction of the window, in [0, 1]")
        check_probability(self.flip, "augment.flip")
        check(self.noise >= 0, "augment.noise", "is a relative standard deviation, >= 0")
        check_beta(self.cutmix, "augment.cutmix")
        check_probability(self.cutmix_p, "augment.cutmix_p")
