"""aip-toy: an example third-party aip modality for 1-D signals.

The single datum is one long synthetic signal; the student learns to tell which frequency band dominates a
window by matching, on random augmented windows of that one signal, a teacher trained on labelled windows.

The package registers one object, :data:`modality`, under the entry-point group ``aip.modalities`` (see
``pyproject.toml``). aip never imports this package by name: ``modality = "toy"`` in a recipe makes the core
load ``aip_toy:modality`` and ask it for everything that depends on the kind of data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from aip.plugin import AipError, LabelledData, Modality, Recipe, StudentConfig, TeacherConfig, check
from aip_toy import data, models
from aip_toy.augment import SignalAugmenter
from aip_toy.config import ToyAugmentConfig, ToySourceConfig
from aip_toy.signals import WindowSampler, make_signal

__version__ = "0.1.0"

#: a recipe of this modality: ``recipe.source`` is a ToySourceConfig, ``recipe.augment`` a ToyAugmentConfig
ToyRecipe = Recipe[ToySourceConfig, ToyAugmentConfig]


class ToyModality:
    """1-D signals: windows ``(B, 1, W)``, float32, roughly zero mean and unit scale (not bounded)."""

    name = "toy"
    SourceConfig = ToySourceConfig
    AugmentConfig = ToyAugmentConfig

    def validate(self, recipe: ToyRecipe) -> None:
        """Cross-section checks, run by the core right after parsing (``aip check`` and before any work)."""
        data.DATASETS.get(recipe.eval.dataset)  # unknown dataset -> AipError listing the known ones
        check(recipe.teacher.kind != "pretrained", "teacher.kind",
              "the toy modality has no pretrained weights; use 'train' (or 'checkpoint')")
        sections: list[tuple[str, TeacherConfig | StudentConfig]] = [("student", recipe.student)]
        if recipe.teacher.kind in ("train", "checkpoint"):
            sections.append(("teacher", recipe.teacher))
        for key, spec in sections:
            if spec.arch == "mlp":  # the MLP's first layer is as wide as the window (see docs/plugins.md)
                window = spec.kwargs.get("window", 128)
                check(window == recipe.source.window, f"{key}.kwargs.window",
                      f"the mlp reads whole windows, so it must equal source.window "
                      f"({recipe.source.window}), got {window}; set {key}.kwargs = "
                      f"{{ window = {recipe.source.window} }}")
            # toy models are tiny: building one catches an unknown arch or a bad kwargs key at `aip check`
            self.model(spec, recipe=recipe, num_classes=2, pretrained=False)

    def sampler(self, recipe: ToyRecipe, *, device: torch.device) -> WindowSampler:
        return WindowSampler(make_signal(recipe.source), window=recipe.source.window, device=device)

    def augmenter(self, recipe: ToyRecipe, *, device: torch.device) -> SignalAugmenter:  # noqa: ARG002
        return SignalAugmenter(recipe.augment)  # stateless: works on whatever device the windows are on

    def model(self, spec: TeacherConfig | StudentConfig, *, recipe: ToyRecipe, num_classes: int,
              pretrained: bool) -> nn.Module:  # noqa: ARG002
        return models.build(spec.arch, num_classes=num_classes, channels=1, pretrained=pretrained,
                            kwargs=dict(spec.kwargs), mean=spec.mean, std=spec.std)

    def data(self, recipe: ToyRecipe, *, split: Literal["train", "test"], train: bool) -> LabelledData:
        return data.load(recipe.eval.dataset, split=split, window=recipe.source.window, train=train)

    def read_input(self, recipe: ToyRecipe, item: Any) -> torch.Tensor:
        """Optional capability (aip.modality.InputReader), for ``aip predict``: one window ``(1, W)`` from an
        array or a ``.npy`` file of ``W`` samples, taken as they are (the dataset's windows are sums of sines of
        amplitude about 1)."""
        import numpy as np

        if isinstance(item, (str, Path)):
            try:
                item = np.load(Path(item), allow_pickle=False)
            except (OSError, ValueError) as e:
                raise AipError(f"cannot read {item} as a .npy array of samples ({e})") from None
        x = torch.as_tensor(np.asarray(item), dtype=torch.float32).flatten()
        if x.numel() != recipe.source.window:
            raise AipError(f"a toy input must hold source.window = {recipe.source.window} samples, got {x.numel()}")
        return x[None]

    def input_spec(self, recipe: ToyRecipe) -> dict[str, Any]:
        return {"shape": [1, recipe.source.window], "dtype": "float32", "range": [-2.0, 2.0], "layout": "NCL",
                "preprocess": f"{recipe.source.window} samples of a signal of amplitude about 1, as they are"}

    def preview(self, views: torch.Tensor, path: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        x = views.detach().float().cpu()[:16, 0]  # up to 16 windows, first channel
        cols = 4
        rows = -(-len(x) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 1.6 * rows), squeeze=False, sharex=True)
        for ax, w in zip(axes.flat, x, strict=False):
            ax.plot(w.numpy(), linewidth=0.8)
        for ax in axes.flat:
            ax.set_yticks([])
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return [path]

    def describe_source(self, recipe: ToyRecipe) -> str:
        return f"one {recipe.source.kind} signal (seed {recipe.source.seed})"

    def example(self) -> dict[str, Any]:
        return {"modality": "toy", "name": "toy-example", "source": {"kind": "sines", "window": 128},
                "teacher": {"kind": "train", "arch": "cnn1d", "kwargs": {"width": 8}},
                "student": {"arch": "mlp", "kwargs": {"window": 128, "hidden": 32}},
                "train": {"batch_size": 8, "samples_per_epoch": 16, "epochs": 1},
                "eval": {"dataset": "bands"}}

    def catalog(self) -> dict[str, list[str]]:
        return {
            "models": models.names(),
            "datasets": data.DATASETS.names(),
            "sources": ["sines", "random_walk"],  # source.kind
        }


modality: Modality[ToySourceConfig, ToyAugmentConfig] = ToyModality()  # a type checker checks it against the protocol

__all__ = ["ToyModality", "modality"]
