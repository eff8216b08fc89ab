"""The video modality: clips synthesized from one image (or one video), AugMix and CutMix on clips, PyTorchVideo
and torchvision video models, Kinetics-400 / UCF101 / folder datasets decoded with PyAV, multi-clip evaluation.

Registered under the entry-point group ``aip.modalities`` as ``video`` (see ``pyproject.toml``); the core never
imports this package. Clips are ``(B, C, T, H, W)`` float tensors in [0, 1]. Heavy imports (PyAV, PyTorchVideo,
torchvision) happen inside the methods that need them, so validating a recipe stays fast.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from aip.cache import dataset_root
from aip.errors import AipError, RecipeError, UsageError, one_line
from aip.extras import require
from aip.modality import DataPresence, LabelledData, Visuals
from aip.recipe import Recipe, StudentConfig, TeacherConfig
from modalities.image.source import check_source
from modalities.video.config import VideoAugmentConfig, VideoSourceConfig

require("av", "pytorchvideo", extra="video", what="the video modality")

#: whether the core averages several views per labelled item (``LabelledData.views``)
VIEWS_SUPPORTED = "views" in {f.name for f in dataclasses.fields(LabelledData)}


#: the offline datasets synthesised on first use into the dataset cache (``root/NAME-vV-HASH``)
BUILT = {"motion": "motion", "motion-objects": "objects"}  # their modules


class VideoModality:
    """The built-in video modality (see :class:`aip.modality.Modality`)."""

    name = "video"
    SourceConfig = VideoSourceConfig
    AugmentConfig = VideoAugmentConfig

    def validate(self, recipe: Recipe) -> None:
        """Cross-section checks: known dataset and models, and an augmentation crop that fits the clips."""
        from modalities.video import datasets, models

        datasets.DatasetName.parse(recipe.eval.dataset)
        if recipe.source.uri.startswith("dataset:") and recipe.source.uri != "dataset:train":
            raise UsageError(f"source.uri = {recipe.source.uri!r}: the only dataset source is dataset:train (the "
                             "labelled training clips, labels unused); else set source.uri to a video file, an image, "
                             "a URL, skimage:NAME or synthetic:noise")
        check_source(recipe.source.uri, what="source video or image")  # a typo fails here, before any training
        for role in ("teacher", "student"):
            spec = getattr(recipe, role)
            if spec.arch and spec.arch not in models.names():
                models.build(spec.arch, num_classes=1, frames=1, size=recipe.source.size, pretrained=False)
        if recipe.augment.short_side[0] < recipe.source.size:
            raise RecipeError(f"recipe key augment.short_side: the smallest short side "
                              f"({recipe.augment.short_side[0]}) must be at least source.size = {recipe.source.size}")

    def sampler(self, recipe: Recipe, *, device: torch.device):
        from modalities.video.augment import crop_scale
        from modalities.video.source import ClipSampler, load_source

        if recipe.source.uri == "dataset:train":  # the upper bound: random training clips, labels unused
            from aip.sampling import DatasetSampler

            return DatasetSampler(self.data(recipe, split="train", train=True).dataset, device=device)
        # the augmentation's crop and flip are folded into the sampler's one resampling (see ClipSampler)
        lo, hi = crop_scale(recipe.augment, recipe.source.size)
        return ClipSampler(load_source(recipe.source), recipe.source, device=device,
                           crop=(lo, hi) if lo < 1.0 else None, crop_hflip=recipe.augment.hflip)

    def augmenter(self, recipe: Recipe, *, device: torch.device):
        from modalities.video.augment import VideoAugmenter

        geometry = recipe.source.uri == "dataset:train"  # other sources' clips come cropped by the sampler
        return VideoAugmenter(recipe.augment, size=recipe.source.size, geometry=geometry).to(device)

    def model(self, spec: TeacherConfig | StudentConfig, *, recipe: Recipe, num_classes: int,
              pretrained: bool) -> nn.Module:
        from modalities.video import models

        return models.build(spec.arch, num_classes=num_classes, frames=recipe.source.frames, size=recipe.source.size,
                            pretrained=pretrained, weights=getattr(spec, "weights", "DEFAULT"),
                            kwargs=dict(spec.kwargs), norm=(spec.mean, spec.std) if spec.mean else None)

    def data(self, recipe: Recipe, *, split: Literal["train", "test"], train: bool) -> LabelledData:
        from modalities.video import datasets

        return datasets.load(recipe.eval.dataset, root=dataset_root(recipe.eval.root, recipe.eval.dataset),
                             split=split, train=train, cfg=recipe.source, download=recipe.eval.download,
                             views_supported=VIEWS_SUPPORTED)

    def data_presence(self, recipe: Recipe) -> DataPresence:
        """Index the test split with downloads off, decoding nothing (aip.modality.DataLocator); the offline sets
        (motion, motion-objects) are present once built."""
        from modalities.video import datasets
        from modalities.video.readers import READERS

        name = datasets.DatasetName.parse(recipe.eval.dataset)
        root = dataset_root(recipe.eval.root, recipe.eval.dataset)
        if name.reader in BUILT:  # the current version's folder (atomic_dir gives it its name once complete)
            import importlib

            version = importlib.import_module(f"modalities.video.{BUILT[name.reader]}").VERSION
            built = sorted(p for p in root.glob(f"{name.reader}-v{version}-*") if p.is_dir())
            return DataPresence(True, str(root), f"built: {built[-1].name}") if built else \
                DataPresence(False, str(root), "not built yet", fetch="build")
        try:
            index = READERS.get(name.reader)(root, split="test", option=name.option, download=False)
        except AipError as e:
            fetch = "download" if recipe.eval.download and name.reader == "kinetics400" else ""
            return DataPresence(False, str(root), one_line(e), fetch=fetch)
        return DataPresence(True, str(root), f"{len(index.files)} test videos ({len(index.classes)} classes)")

    def preview(self, views: torch.Tensor, path: Path) -> list[Path]:
        """A PNG with one clip per row (frames side by side) and an animated GIF of the clips next to it."""
        from modalities.video.preview import clip_gif, clip_grid

        if views.dim() != 5:
            raise UsageError(f"video preview takes clips (B, C, T, H, W), got shape {tuple(views.shape)}")
        views = views[:16]  # a readable grid
        return [clip_grid(views, path), clip_gif(views, path.with_suffix(".gif"), fps=4.0)]

    def describe_source(self, recipe: Recipe) -> str:
        return recipe.source.uri

    def example(self) -> dict[str, Any]:
        return {"modality": "video", "name": "video-example",
                "source": {"uri": "skimage:astronaut", "frames": 4, "size": 32, "test_short_side": 36},
                "augment": {"short_side": [36, 40]},
                "teacher": {"kind": "train", "arch": "cnn3d", "kwargs": {"width": 4}},
                "student": {"arch": "cnn3d", "kwargs": {"width": 4}},
                "train": {"batch_size": 4, "samples_per_epoch": 8, "epochs": 1},
                "eval": {"dataset": "kinetics400"}}

    def read_input(self, recipe: Any, item: Any) -> torch.Tensor:
        """A video file (the middle test clip) or a ``(C, T, H, W)`` clip as one ``(3, T, S, S)`` view."""
        from modalities.video.inputs import read_video

        return read_video(item, recipe.source)

    def input_spec(self, recipe: Any) -> dict[str, Any]:
        from modalities.video.inputs import input_spec

        return input_spec(recipe)

    def visuals(self, recipe: Any) -> Visuals:
        """Feature visualisation (:class:`aip.modality.Visualizer`): Fourier clips, one affine per clip, GIF."""
        from modalities.video.visual import ClipVisuals

        return ClipVisuals(recipe)

    def catalog(self) -> dict[str, list[str]]:
        from modalities.video import datasets, models

        return {
            "models": models.names(),
            "datasets": [*datasets.names(), "ucf101:2", "ucf101:3"],
            "sources": ["PATH (any image file)", "http(s)://URL (cached)", "skimage:NAME (e.g. skimage:astronaut)",
                        "PATH.mp4|.avi|.mkv|.webm|.mov (one video, decoded with PyAV)",
                        "synthetic:noise (the camera over a noise image)",
                        "dataset:train (random training clips, labels unused: the upper bound)"],
        }


modality = VideoModality()

__all__ = ["VideoModality", "modality"]
