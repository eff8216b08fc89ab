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
from typing import Any, Literal

import torch
from torch import nn

from aip.cache import dataset_root, local_file
from aip.errors import AipError, UsageError, one_line
from aip.extras import require
from aip.modality import DataPresence, LabelledData, Visuals
from aip.recipe import Recipe, StudentConfig, TeacherConfig

# before the modules that import them, so a missing one is named with its extra, not as a traceback
require("soundfile", "torchaudio", extra="audio", what="the audio modality")
from aip.sampling import DatasetSampler  # noqa: E402
from modalities.audio.augment import AudioAugmenter  # noqa: E402
from modalities.audio.config import AudioAugmentConfig, AudioSourceConfig  # noqa: E402
from modalities.audio.source import SOURCES, WindowSampler, load_recording  # noqa: E402

#: offline sets synthesised on first use into the dataset cache (``root/NAME-vV-HASH``), and the corpora that
#: torchaudio downloads when ``eval.download = true``
BUILT = {"spoken-keywords": "keywords", "spoken-languages": "languages", "sound-types": "sounds"}  # their modules
DOWNLOADABLE = ("speechcommands", "speechcommands35", "librispeech")


class AudioModality:
    """The built-in audio modality (see :class:`aip.modality.Modality`)."""

    name = "audio"
    preview_rate = 16_000
    SourceConfig = AudioSourceConfig
    AugmentConfig = AudioAugmentConfig

    def validate(self, recipe: Recipe) -> None:
        """Fail when the recipe loads on an unknown dataset name (listing the known ones) or a missing file."""
        from modalities.audio.datasets import DATASETS

        DATASETS.get(recipe.eval.dataset)  # an unknown name is an AipError listing the known ones
        uri = recipe.source.uri
        accepts = "an audio file, an http(s) URL, espeak:prose, espeak:radio, synthetic:noise or dataset:train"
        if ":" not in uri.split("/")[0]:
            local_file(uri, what="source recording", accepts=accepts)
        elif not uri.startswith(("http://", "https://")) and uri not in SOURCES:
            raise UsageError(f"unknown source {uri!r}; set source.uri to {accepts}")

    def sampler(self, recipe: Recipe, *, device: torch.device) -> WindowSampler | DatasetSampler:
        src: AudioSourceConfig = recipe.source
        self.preview_rate = src.rate  # preview() is handed views only: it renders them at this rate
        if src.uri == "dataset:train":
            return DatasetSampler(self.data(recipe, split="train", train=False).dataset, device=device,
                                  items=src.train_items, seed=src.seed)
        return WindowSampler(load_recording(src), samples=src.samples, device=device)

    def augmenter(self, recipe: Recipe, *, device: torch.device) -> AudioAugmenter:
        return AudioAugmenter(recipe.augment, rate=recipe.source.rate).to(device)

    def model(self, spec: TeacherConfig | StudentConfig, *, recipe: Recipe, num_classes: int,
              pretrained: bool) -> nn.Module:
        from modalities.audio import models

        return models.build(spec.arch, num_classes=num_classes, rate=recipe.source.rate, pretrained=pretrained,
                            kwargs=dict(spec.kwargs))

    def data(self, recipe: Recipe, *, split: Literal["train", "test"], train: bool) -> LabelledData:
        from modalities.audio import datasets

        return datasets.load(recipe.eval.dataset, root=dataset_root(recipe.eval.root), split=split, train=train,
                             download=recipe.eval.download, rate=recipe.source.rate, samples=recipe.source.samples,
                             windows=recipe.source.test_windows)

    def preview(self, views: torch.Tensor, path: Path) -> list[Path]:
        from modalities.audio.preview import render

        return render(views, path, rate=self.preview_rate)

    def describe_source(self, recipe: Recipe) -> str:
        return recipe.source.uri

    def data_presence(self, recipe: Recipe) -> DataPresence:
        """Find the test split with downloads off (aip.modality.DataLocator): the downloadable corpora by their
        folders, the offline sets once built, the other folders by reading their index."""
        from modalities.audio import datasets

        name, root = recipe.eval.dataset, dataset_root(recipe.eval.root)
        if name in BUILT:  # the current version's folder (atomic_dir gives it its name once complete)
            import importlib

            version = importlib.import_module(f"modalities.audio.{BUILT[name]}").VERSION
            built = sorted(p for p in root.glob(f"{name}-v{version}-*") if p.is_dir())
            return DataPresence(True, str(root), f"built: {built[-1].name}") if built else \
                DataPresence(False, str(root), "not built yet", fetch="build")
        try:
            if name in ("speechcommands", "speechcommands35"):
                found = f"in {datasets.find_speechcommands(root, download=False)}"
            elif name == "librispeech":
                found = f"in {datasets.find_librispeech(root, download=False)}"
            else:
                data = datasets.load(name, root=root, split="test", train=False, download=False,
                                     rate=recipe.source.rate, samples=recipe.source.samples,
                                     windows=recipe.source.test_windows)
                found = f"{len(data.dataset)} test items"
        except AipError as e:
            fetch = "download" if recipe.eval.download and name in DOWNLOADABLE else ""
            return DataPresence(False, str(root), one_line(e), fetch=fetch)
        return DataPresence(True, str(root), found)

    def source_measures(self, recipe: Any) -> dict[str, float]:
        """FLAC size per second and spectral entropy of the source recording (aip.modality.SourceMeasures)."""
        from modalities.audio.measures import measures

        return measures(recipe.source)

    def example(self) -> dict[str, Any]:
        return {"modality": "audio", "name": "audio-example",
                "source": {"uri": "synthetic:noise"},
                "teacher": {"kind": "train", "arch": "cnn", "kwargs": {"width": 8}},
                "student": {"arch": "cnn", "kwargs": {"width": 8}},
                "train": {"batch_size": 4, "samples_per_epoch": 8, "epochs": 1},
                "eval": {"dataset": "spoken-keywords"}}

    def reference_pipeline(self, recipe: Recipe, *, root: Path, batch_size: int, workers: int,
                           count: int) -> Any:
        """The CPU pipeline an audio user would write (soundfile reads, librosa augmentation and log-mels in
        DataLoader workers), for ``aip bench --vs-reference``; the recording is written under ``root``."""
        from modalities.audio.reference import reference_loader

        sampler = self.sampler(recipe, device=torch.device("cpu"))
        wave = sampler.wave if isinstance(sampler, WindowSampler) else sampler.sample(min(count, 256)).flatten()
        return reference_loader(recipe, wave, root=root, batch_size=batch_size, workers=workers, count=count)

    def read_input(self, recipe: Any, item: Any) -> torch.Tensor:
        """An audio file or waveform as ``(1, samples)``, or ``(V, 1, samples)`` windows of a longer one."""
        from modalities.audio.inputs import read_waveform

        return read_waveform(item, rate=recipe.source.rate, samples=recipe.source.samples)

    def input_spec(self, recipe: Any) -> dict[str, Any]:
        from modalities.audio.inputs import input_spec

        return input_spec(recipe)

    def visuals(self, recipe: Any) -> Visuals:
        """Feature visualisation (:class:`aip.modality.Visualizer`): pink-spectrum waveforms, PNG and WAVs."""
        from modalities.audio.visual import WaveVisuals

        return WaveVisuals(recipe)

    def catalog(self) -> dict[str, list[str]]:
        from modalities.audio import datasets, models

        return {"models": models.names(), "datasets": datasets.DATASETS.names(), "sources": list(SOURCES)}


modality = AudioModality()

__all__ = ["AudioModality", "modality"]
