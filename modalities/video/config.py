"""The video modality's recipe sections: ``[source]`` (how clips are made from the one image or video, and how
clips are cut from the real videos of the evaluation set) and ``[augment]`` (training-time augmentation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aip.schema import check, check_beta, check_probability


@dataclass(frozen=True)
class VideoSourceConfig:
    """Where the single datum comes from, how clips are synthesized from it, and the clip shape.

    Synthesized clips follow the paper's fake-video generator: an initial random crop of ``init_crop`` x the
    short side and colour jitter (once per clip), then two random-resized-crop boxes (scale ``scale``, aspect
    ratio ``ratio``); a "camera" moves linearly from the first box to the second over ``pan_frames`` frames
    played at ``fps``, and a clip is ``frames`` of them, ``stride`` apart, from a random start (the paper: 16
    frames at 12 fps, 4 frames at rate 1). ``hflip``/``vflip`` flip whole clips.

    ``uri``: an image (a file path, an ``http(s)`` URL downloaded once into the cache, ``skimage:NAME``) or one
    video file (``.mp4``, ``.avi``, ``.mkv``, ``.webm``, ``.mov``), decoded with PyAV at ``fps``; clips of a
    video are ``frames`` frames ``stride`` apart from a random start, cut with the same random boxes (the camera
    then moves over a moving scene). ``levels``: ``"stretch"`` (the default) maps the picture's, or the whole
    video's, 0.5th and 99.5th brightness percentiles to black and white (one linear map, so hues and the
    video's changes of brightness stay; :func:`modalities.image.source.stretch_levels`), ``"keep"`` takes the
    pixels as they are.

    The evaluation set's videos are read at ``data_fps`` with ``data_stride`` frames between clip frames (X3D's
    4x12 at 30 fps), resized to ``test_short_side`` on the short side and centre-cropped to ``size``;
    ``test_clips`` uniformly spaced clips per video are scored (softmax averaged per video). A teacher trained
    by ``aip teacher`` sees one random clip per video, scaled to 1..1.25 x ``test_short_side``, randomly cropped
    and flipped with probability ``train_hflip`` (0 for datasets whose classes depend on left/right).

    Richer motion from the same one image (all off by default, which is the paper's generator exactly):

    - ``path``: ``"linear"`` (the paper) or ``"curved"``: the box follows a quadratic Bezier curve from the first
      box to the last through a third random box of the same kind (its centre and size both), so the camera
      arcs, speeds up or slows down, and zooms unevenly.
    - ``rotate``: the camera's roll at the pan's first and last frame, each drawn from ``[-rotate, rotate]``
      degrees, turning evenly in between (0 = off); a rolled box is shrunk until its corners lie inside the
      unrolled one, so it never reads past the image.
    - ``sprites``: that many layers per clip (0 = off), each a patch cut from a random place of the image and
      pasted in front of the scene, hard-edged, in the shape ``sprite_shape`` (``"disc"`` or ``"box"``); each
      moves in a straight line between two random places in the frame over the pan, its side growing or
      shrinking between two values drawn from ``sprite_scale`` (a fraction of the frame's side), so layers move
      apart from the camera's pan (parallax) and approach or recede. At its first size a sprite shows the image
      at the scene's magnification.
    - ``photometric``: per-frame lighting drift (0 = off): gains of red, green and blue and a contrast factor
      drawn from ``[1 - photometric, 1 + photometric]`` for the pan's first and last frame, blended smoothly
      (smoothstep) in between.
    - ``occlusion_p``: the probability per clip of an occluder (0 = off): a hard-edged rectangle, its sides a
      fraction ``occlusion_scale`` of the frame's, either a flat random colour or a patch of the image (even
      odds), moving in a straight line across the frame in front of everything else.
    """

    uri: str = "skimage:astronaut"
    frames: int = 4
    size: int = 160
    fps: float = 12.0
    pan_frames: int = 16
    stride: int = 1
    max_side: int = 1024
    init_crop: float = 0.5
    scale: tuple[float, float] = (0.002, 1.0)
    ratio: tuple[float, float] = (0.75, 4 / 3)
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.5
    hflip: float = 0.5
    vflip: float = 0.0
    data_fps: float = 30.0
    data_stride: int = 12
    test_clips: int = 10
    test_short_side: int = 183
    train_hflip: float = 0.5
    path: Literal["linear", "curved"] = "linear"
    rotate: float = 0.0
    sprites: int = 0
    sprite_scale: tuple[float, float] = (0.15, 0.4)
    sprite_shape: Literal["disc", "box"] = "disc"
    photometric: float = 0.0
    occlusion_p: float = 0.0
    occlusion_scale: tuple[float, float] = (0.2, 0.5)
    levels: Literal["stretch", "keep"] = "stretch"

    @property
    def span(self) -> int:
        """Frames of the underlying sequence one clip covers: ``(frames - 1) * stride + 1``."""
        return (self.frames - 1) * self.stride + 1

    def __post_init__(self) -> None:
        check(self.frames >= 1, "source.frames", "must be at least 1")
        check(self.size >= 16, "source.size", "must be at least 16 pixels")
        check(self.fps > 0, "source.fps", "must be positive (frames per second)")
        check(self.stride >= 1, "source.stride", "must be at least 1")
        check(self.pan_frames >= self.span, "source.pan_frames",
              f"must be at least (frames - 1) * stride + 1 = {self.span} so one clip fits in the pan")
        check(self.max_side == 0 or self.max_side >= self.size, "source.max_side",
              "must be 0 (keep the image as it is) or at least source.size")
        check(0 <= self.init_crop <= 1, "source.init_crop", "must be in [0, 1] (0 disables the initial crop)")
        check(0 < self.scale[0] <= self.scale[1] <= 1, "source.scale", "must satisfy 0 < min <= max <= 1")
        check(0 < self.ratio[0] <= self.ratio[1], "source.ratio", "must satisfy 0 < min <= max")
        check(all(j >= 0 for j in self.jitter) and self.jitter[3] <= 0.5, "source.jitter",
              "is [brightness, contrast, saturation, hue], all >= 0 and hue <= 0.5")
        for key in ("jitter_p", "hflip", "vflip", "train_hflip"):
            check_probability(getattr(self, key), f"source.{key}")
        check(self.data_fps > 0, "source.data_fps", "must be positive (frames per second)")
        check(self.data_stride >= 1, "source.data_stride", "must be at least 1")
        check(self.test_clips >= 1, "source.test_clips", "must be at least 1")
        check(self.test_short_side >= self.size, "source.test_short_side", "must be at least source.size")
        check(0 <= self.rotate <= 180, "source.rotate", "is the largest roll in degrees, in [0, 180] (0 = off)")
        check(0 <= self.sprites <= 16, "source.sprites", "is the number of sprite layers per clip, 0..16 (0 = off)")
        for key in ("sprite_scale", "occlusion_scale"):
            lo, hi = getattr(self, key)
            check(0 < lo <= hi <= 1, f"source.{key}", "is [min, max] of a side as a fraction of the frame's, "
                  "0 < min <= max <= 1")
        check(0 <= self.photometric <= 1, "source.photometric",
              "is the largest lighting change per channel, in [0, 1] (0 = off)")
        check_probability(self.occlusion_p, "source.occlusion_p", note="0 = off")


@dataclass(frozen=True)
class VideoAugmentConfig:
    """Training-time augmentation of each batch of clips: per-clip random parameters, the same on every frame.

    ``augmix``: AugMix (Hendrycks et al. 2020) with ``augmix_width`` chains of random operations (affine,
    posterize, solarize, equalize, sharpness, colour), mixed with Dirichlet weights and blended with the clip;
    ``augmix_severity`` in 1..10 scales the operations. ``short_side``: the clip is scaled so its short side is
    a random value in this range and a random ``source.size`` crop is taken (the paper: 183..229 for 160 px
    crops). ``cutmix``: the Beta parameter of CutMix (one box per clip, the same on all frames, a random
    partner clip), applied with probability ``cutmix_p``; 0 disables it.
    """

    augmix: bool = True
    augmix_width: int = 3
    augmix_severity: int = 3
    short_side: tuple[int, int] = (183, 229)
    hflip: float = 0.5
    cutmix: float = 1.0
    cutmix_p: float = 1.0

    def __post_init__(self) -> None:
        check(self.augmix_width >= 1, "augment.augmix_width", "must be at least 1")
        check(1 <= self.augmix_severity <= 10, "augment.augmix_severity", "must be in 1..10")
        check(0 < self.short_side[0] <= self.short_side[1], "augment.short_side", "must satisfy 0 < min <= max")
        for key in ("hflip", "cutmix_p"):
            check_probability(getattr(self, key), f"augment.{key}")
        check_beta(self.cutmix, "augment.cutmix")
