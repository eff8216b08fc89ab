"""The image modality: views of one image, kornia augmentation, torchvision/timm/CIFAR models, image datasets.

Registered under the entry-point group ``aip.modalities`` as ``image`` (see ``pyproject.toml``), exactly as a
third-party plugin would be; the core never imports this package.

Heavy imports (torchvision datasets, timm) happen inside the methods that need them, so validating a recipe
stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from aip.cache import dataset_root
from aip.errors import AipError, one_line
from aip.modality import DataPresence, LabelledData, Visuals
from aip.recipe import Recipe, StudentConfig, TeacherConfig
from aip.sampling import DatasetSampler
from modalities.image.augment import ImageAugmenter
from modalities.image.config import ImageAugmentConfig, ImageSourceConfig
from modalities.image.source import SYNTHETIC, ImageViewSampler, check_source, load_image

#: the datasets whose readers fetch missing files with torchvision's downloader when ``eval.download = true``
DOWNLOADABLE = frozenset({"fashion-mnist", "cifar10", "cifar100", "stl10", "pets", "flowers102", "places365"})


class ImageModality:
    """The built-in image modality (see :class:`aip.modality.Modality`)."""

    name = "image"
    SourceConfig = ImageSourceConfig
    AugmentConfig = ImageAugmentConfig

    def validate(self, recipe: Recipe) -> None:
        """Cross-section checks that need the dataset's facts (raise early, before any work)."""
        from modalities.image import datasets

        datasets.info(recipe.eval.dataset)  # unknown dataset -> AipError listing the known ones
        check_source(recipe.source.uri)  # a typo in source.uri fails here, not after the teacher has trained

    def sampler(self, recipe: Recipe, *, device: torch.device) -> ImageViewSampler | DatasetSampler:
        src: ImageSourceConfig = recipe.source
        if src.uri == "dataset:train":
            data = self.data(recipe, split="train", train=False)
            return DatasetSampler(data.dataset, device=device, items=src.train_items, seed=src.seed)
        # the augmentation's crop and flip are folded into the sampler's one resampling (see ImageViewSampler)
        return ImageViewSampler(load_image(src), src, device=device, crop=recipe.augment)

    def augmenter(self, recipe: Recipe, *, device: torch.device) -> ImageAugmenter:
        geometry = recipe.source.uri == "dataset:train"  # other sources' views come cropped by the sampler
        return ImageAugmenter(recipe.augment, size=recipe.source.size, channels=recipe.source.channels,
                              geometry=geometry).to(device)

    def model(self, spec: TeacherConfig | StudentConfig, *, recipe: Recipe, num_classes: int,
              pretrained: bool) -> nn.Module:
        from modalities.image import datasets, models

        stats = datasets.norm_stats(recipe.eval.dataset, channels=recipe.source.channels)
        return models.build(
            spec.arch,
            num_classes=num_classes,
            in_channels=recipe.source.channels,
            pretrained=pretrained,
            weights=getattr(spec, "weights", "DEFAULT"),
            kwargs=dict(spec.kwargs),
            norm=(spec.mean, spec.std) if spec.mean else None,
            dataset_norm=stats,
        )

    def data(self, recipe: Recipe, *, split: Literal["train", "test"], train: bool) -> LabelledData:
        from modalities.image import datasets

        return datasets.load(
            recipe.eval.dataset,
            root=dataset_root(recipe.eval.root),
            split=split,
            train=train,
            download=recipe.eval.download,
            size=recipe.source.size,
            channels=recipe.source.channels,
        )

    def data_presence(self, recipe: Recipe) -> DataPresence:
        """Read the test split with downloads off (aip.modality.DataLocator): present if it reads."""
        from modalities.image import datasets

        root = dataset_root(recipe.eval.root)
        try:
            data = datasets.load(recipe.eval.dataset, root=root, split="test", train=False, download=False,
                                 size=recipe.source.size, channels=recipe.source.channels)
        except AipError as e:
            fetch = "download" if recipe.eval.download and recipe.eval.dataset in DOWNLOADABLE else ""
            return DataPresence(False, str(root), one_line(e), fetch=fetch)
        return DataPresence(True, str(root), f"{len(data.dataset)} test items")

    def preview(self, views: torch.Tensor, path: Path) -> list[Path]:
        from torchvision.utils import save_image

        n = views.shape[0]
        nrow = max(1, int(n**0.5))
        save_image(views.float().cpu(), path, nrow=nrow, padding=2, pad_value=1.0)
        return [path]

    def reference_pipeline(self, recipe: Recipe, *, root: Path, batch_size: int, workers: int,
                           count: int) -> Any:
        """The paper's pipeline (pre-generated patches, PIL augmentation in DataLoader workers), for
        ``aip bench --vs-reference``; patches are written under ``root``."""
        from modalities.image.reference import reference_loader

        sampler = self.sampler(recipe, device=torch.device("cpu"))
        return reference_loader(recipe, sampler, root=root, batch_size=batch_size, workers=workers, count=count)

    def describe_source(self, recipe: Recipe) -> str:
        return recipe.source.uri

    def source_measures(self, recipe: Any) -> dict[str, float]:
        """Compressed sizes, pixel entropy and patch diversity of the source image (aip.modality.SourceMeasures)."""
        from modalities.image.measures import measures

        return measures(recipe.source)

    def example(self) -> dict[str, Any]:
        return {"modality": "image", "name": "image-example",
                "source": {"uri": "synthetic:dead_leaves", "size": 32, "channels": 3},
                "teacher": {"kind": "train", "arch": "cnn", "kwargs": {"width": 8}},
                "student": {"arch": "cnn", "kwargs": {"width": 8}},
                "train": {"batch_size": 8, "samples_per_epoch": 16, "epochs": 1},
                "eval": {"dataset": "cifar10"}}

    def read_input(self, recipe: Any, item: Any) -> torch.Tensor:
        """An image file or array as one ``(C, H, W)`` view in [0, 1], resized like the test split."""
        from modalities.image import datasets
        from modalities.image.inputs import read_image

        grid = datasets.info(recipe.eval.dataset).native_size is not None
        return read_image(item, size=recipe.source.size, channels=recipe.source.channels, grid=grid)

    def input_spec(self, recipe: Any) -> dict[str, Any]:
        from modalities.image import datasets
        from modalities.image.inputs import input_spec

        info = datasets.info(recipe.eval.dataset)
        return input_spec(recipe, grid=info.native_size is not None, native_channels=info.channels,
                          description=info.description,
                          norm=datasets.norm_stats(recipe.eval.dataset, channels=recipe.source.channels))

    def visuals(self, recipe: Any) -> Visuals:
        """Feature visualisation (:class:`aip.modality.Visualizer`): Lucid's Fourier parametrisation, a PNG."""
        from modalities.image.visual import ImageVisuals

        return ImageVisuals(recipe)

    def catalog(self) -> dict[str, list[str]]:
        from modalities.image import datasets, models

        return {
            "models": models.names(),
            "datasets": datasets.DATASETS.names(),
            "sources": [
                "PATH (any image file)", "http(s)://URL (cached)", "skimage:NAME (e.g. skimage:astronaut)",
                *(f"synthetic:{s}" for s in SYNTHETIC), "dataset:train",
            ],
        }


modality = ImageModality()

__all__ = ["ImageModality", "modality", "AipError"]
