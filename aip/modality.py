"""The interface a modality plugin provides to the core.

A modality is one object (registered under the entry-point group ``aip.modalities``) that the core asks for
everything that depends on the kind of data. All tensors handed to the core are float tensors on the training
device, batch first (images ``(B, C, H, W)`` in ``[0, 1]``, but any shape the modality's models take);
models take those tensors as they are and return logits ``(B, num_classes)``, doing their own input
normalisation (or feature extraction) inside. Labelled dataset items have the shape of one view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from torch.utils.data import Dataset


@runtime_checkable
class SourceSampler(Protocol):
    """Makes batches of raw views of the single source datum (one image, clip or recording)."""

    def sample(self, batch_size: int) -> torch.Tensor:
        """Return ``batch_size`` views (e.g. ``(B, C, H, W)`` in ``[0, 1]`` for images) on the sampler's device.

        Randomness comes from torch's global RNG only, so checkpoints can restore it."""
        ...


@runtime_checkable
class Augmenter(Protocol):
    """Batched training-time augmentation with per-sample random parameters (CutMix included)."""

    def __call__(self, views: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class LabelledData:
    """A labelled split of the target dataset: items are ``(input tensor, int label)``.

    ``views`` > 1 means every item stacks several views of one example, ``(views, *view_shape)`` (e.g. the
    temporal clips of a video): the evaluator averages the softmax over an item's views (the multi-view test
    protocol), and evaluations during training use only the middle view (a cheaper validation).
    """

    dataset: Dataset
    num_classes: int
    classes: list[str] = field(default_factory=list)
    views: int = 1


class Modality(Protocol):
    """What a modality plugin provides. See ``docs/plugins.md`` for a walk-through."""

    name: str
    #: dataclass for the recipe's ``[source]`` section
    SourceConfig: type
    #: dataclass for the recipe's ``[augment]`` section
    AugmentConfig: type

    def sampler(self, recipe: Any, *, device: torch.device) -> SourceSampler:
        """The source sampler for ``recipe.source`` (and, for ``dataset:train``, ``recipe.eval``)."""
        ...

    def augmenter(self, recipe: Any, *, device: torch.device) -> Augmenter:
        """The training-time augmenter for ``recipe.augment``."""
        ...

    def model(self, spec: Any, *, recipe: Any, num_classes: int, pretrained: bool) -> nn.Module:
        """Build the model named by ``spec.arch`` (``spec`` is the recipe's teacher or student section).

        It takes views exactly as the sampler/augmenter make them and returns logits ``(B, num_classes)``,
        normalising (or extracting features) inside. ``recipe`` gives the input shape and the dataset;
        ``pretrained`` loads library weights (``teacher.kind = "pretrained"``) or raises ``AipError``.
        """
        ...

    def data(self, recipe: Any, *, split: str, train: bool) -> LabelledData:
        """The labelled ``split`` (``"train"`` or ``"test"``) of ``recipe.eval.dataset``; ``train`` adds the
        light augmentation used to train a teacher."""
        ...

    def preview(self, views: torch.Tensor, path: Path) -> list[Path]:
        """Render a batch of views (what the student sees) to ``path`` (PNG); return files written."""
        ...

    def catalog(self) -> dict[str, list[str]]:
        """Names users can put in recipes: ``{"models": [...], "datasets": [...], "sources": [...]}``."""
        ...

    def validate(self, recipe: Any) -> None:
        """Optional: cross-section checks at load time; raise ``RecipeError``/``AipError`` naming the key."""
        ...


@runtime_checkable
class InputReader(Protocol):
    """Optional capability: turn a user's raw input into what the models take (``aip predict``, exports).

    ``aip.load_student(...).predict`` and ``aip predict`` need it; a modality without it can still be trained,
    evaluated and exported.
    """

    def read_input(self, recipe: Any, item: Any) -> torch.Tensor:
        """One raw input (a file path, or an array/tensor) as ONE view exactly as the models take it, without a
        batch dimension (image ``(C, H, W)`` in [0, 1] resized like the test split; video ``(C, T, H, W)``;
        audio ``(1, samples)``). A modality may return several views stacked, ``(V, *view_shape)`` (e.g. the
        windows of a long recording); the predictor averages their softmax. Raises ``AipError`` for a file it
        cannot read."""
        ...

    def input_spec(self, recipe: Any) -> dict[str, Any]:
        """What the models take, for ``config.json`` of an export: at least ``shape`` (one view, no batch
        dimension), ``dtype``, ``range`` and a ``preprocess`` sentence; plus rate, frames, normalisation."""
        ...


@runtime_checkable
class Visualizer(Protocol):
    """Optional capability: the input parametrisation and rendering of :mod:`aip.visualize` (feature
    visualisation by activation maximisation) for one kind of data."""

    def visual_params(self, recipe: Any, *, count: int, generator: torch.Generator) -> torch.Tensor:
        """Trainable parameters for ``count`` inputs (e.g. decorrelated Fourier coefficients), small random."""
        ...

    def visual_input(self, recipe: Any, params: torch.Tensor) -> torch.Tensor:
        """Differentiable map from the parameters to a batch of inputs the model takes, in its value range."""
        ...

    def visual_transform(self, recipe: Any, x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """A random jitter/scale/rotation (or their analogue for the data kind) of a batch, differentiable."""
        ...

    def visual_render(self, recipe: Any, inputs: dict[str, torch.Tensor], labels: list[str], path: Path
                      ) -> list[Path]:
        """Write the optimised inputs, one row per model in ``inputs`` (``{"student": x, "teacher": x}``) and
        one column per class named in ``labels``, to ``path`` (PNG, plus WAV/GIF where the data kind has one);
        return the files written."""
        ...
