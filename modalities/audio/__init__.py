"""The audio modality: random windows of one long recording, waveform augmentation on the device, log-mel
keyword-spotting models (BC-ResNet, a small CNN, timm image nets), Speech Commands and labelled clip folders.

Tensor convention: every view is a mono float waveform window ``(B, 1, samples)`` (about [-1, 1]) on the
training device; dataset items are ``(1, samples)``. Models take those waveforms and compute their own log-mel
front end, so teacher and student hear exactly the same augmented window even with different front ends.

Registered under the entry-point group ``aip.modalities`` as ``audio``; the core never imports this package.
Heavy imports (torchaudio, timm) happen inside the methods that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from aip import graphs
from aip.cache import dataset_root, local_file
from aip.errors import AipError
from aip.modality import LabelledData
from modalities.audio.augment import AudioAugmenter
from modalities.audio.config import AudioAugmentConfig, AudioSourceConfig
from modalities.audio.source import SOURCES, DatasetSampler, WindowSampler, load_recording


class AudioModality:
    """The built-in audio modality (see :class:`aip.modality.Modality`)."""

    name = "audio"
    preview_rate = 16_000
    SourceConfig = AudioSourceConfig
    AugmentConfig = AudioAugmentConfig

    def validate(self, recipe: Any) -> None:
        """Fail when the recipe loads on an unknown dataset name (listing the known ones) or a missing file."""
        from modalities.audio.datasets import DATASETS

        if recipe.eval.dataset not in DATASETS:
            raise AipError(f"unknown audio dataset {recipe.eval.dataset!r}; known: {', '.join(DATASETS)}")
        uri = recipe.source.uri
        accepts = "an audio file, an http(s) URL, espeak:prose, synthetic:noise or dataset:train"
        if ":" not in uri.split("/")[0]:
            local_file(uri, what="source recording", accepts=accepts)
        elif not uri.startswith(("http://", "https://")) and uri not in SOURCES:
            raise AipError(f"unknown source {uri!r}; set source.uri to {accepts}")

    def sampler(self, recipe: Any, *, device: torch.device) -> WindowSampler | DatasetSampler:
        src: AudioSourceConfig = recipe.source
        self.preview_rate = src.rate  # preview() is handed views only: it renders them at this rate
        if src.uri == "dataset:train":
            return DatasetSampler(self.data(recipe, split="train", train=False).dataset, device=device)
        return WindowSampler(load_recording(src), samples=src.samples, device=device)

    def augmenter(self, recipe: Any, *, device: torch.device) -> AudioAugmenter:
        return AudioAugmenter(recipe.augment, rate=recipe.source.rate,
                              capture=graphs.wanted(recipe, device)).to(device)

    def model(self, spec: Any, *, recipe: Any, num_classes: int, pretrained: bool) -> nn.Module:
        from modalities.audio import models

        return models.build(spec.arch, num_classes=num_classes, rate=recipe.source.rate, pretrained=pretrained,
                            kwargs=dict(spec.kwargs))

    def data(self, recipe: Any, *, split: str, train: bool) -> LabelledData:
        from modalities.audio import datasets

        return datasets.load(recipe.eval.dataset, root=dataset_root(recipe.eval.root), split=split, train=train,
                             download=recipe.eval.download, rate=recipe.source.rate, samples=recipe.source.samples)

    def preview(self, views: torch.Tensor, path: Path) -> list[Path]:
        from modalities.audio.preview import render

        return render(views, path, rate=self.preview_rate)

    def catalog(self) -> dict[str, list[str]]:
        from modalities.audio import datasets, models

        return {"models": models.names(), "datasets": list(datasets.DATASETS), "sources": list(SOURCES)}


modality = AudioModality()

__all__ = ["AudioModality", "modality"]
