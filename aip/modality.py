"""The interface a modality plugin provides to the core: everything that depends on the kind of data.

A modality is one object registered under the entry-point group ``aip.modalities``. It must provide what
:class:`Modality` declares; the Protocols after it (:class:`ReferencePipeline`, :class:`InputReader`,
:class:`Visualizer` with its :class:`Visuals`, :class:`SourceMeasures`, :class:`DataLocator`, and :class:`Capturable`
for samplers and augmenters) are optional capabilities the core uses when present. All tensors handed to the
core are float tensors on the training device, batch first (images ``(B, C, H, W)`` in ``[0, 1]``, but any shape
the modality's models take);
models take those tensors as they are and return logits ``(B, num_classes)``, doing their own input
normalisation (or feature extraction) inside. Labelled dataset items have the shape of one view.
``docs/plugins.md`` walks through writing one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn
from torch.utils.data import Dataset

from aip.config import A, Recipe, S, StudentConfig, TeacherConfig
from aip.errors import AipError


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

    def __call__(self, views: torch.Tensor, /) -> torch.Tensor: ...


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

    def __post_init__(self) -> None:
        if self.num_classes < 2:  # one class: every prediction is right, and no accuracy means anything
            named = f" ({', '.join(self.classes)})" if self.classes else ""
            raise AipError(f"the dataset has {self.num_classes} class{'' if self.num_classes == 1 else 'es'}{named}; "
                           "a classifier needs at least 2: add class folders, or check eval.dataset and eval.root")


@runtime_checkable
class Modality(Protocol[S, A]):
    """What every modality plugin provides, generic in its ``[source]`` and ``[augment]`` dataclasses ``S`` and
    ``A``: a plugin that declares ``class ToyModality(Modality[ToySourceConfig, ToyAugmentConfig])`` (or just
    annotates its methods with ``Recipe[ToySourceConfig, ToyAugmentConfig]``) gets ``recipe.source`` typed as
    its own ``ToySourceConfig`` in every method."""

    name: str
    #: dataclass for the recipe's ``[source]`` section
    SourceConfig: type[S]
    #: dataclass for the recipe's ``[augment]`` section
    AugmentConfig: type[A]

    def validate(self, recipe: Recipe[S, A]) -> None:
        """Cross-section checks at load time (``aip check`` and before any work of ``aip run``): unknown
        datasets or models, a local source that does not exist. Raise ``AipError``/``RecipeError`` naming the
        key; do nothing if all is well."""
        ...

    def sampler(self, recipe: Recipe[S, A], *, device: torch.device) -> SourceSampler:
        """The source sampler for ``recipe.source`` (and, for ``dataset:train``, ``recipe.eval``)."""
        ...

    def augmenter(self, recipe: Recipe[S, A], *, device: torch.device) -> Augmenter:
        """The training-time augmenter for ``recipe.augment``."""
        ...

    def model(self, spec: TeacherConfig | StudentConfig, *, recipe: Recipe[S, A], num_classes: int,
              pretrained: bool) -> nn.Module:
        """Build the model named by ``spec.arch`` (``spec`` is the recipe's teacher or student section).

        It takes views exactly as the sampler/augmenter make them and returns logits ``(B, num_classes)``,
        normalising (or extracting features) inside. ``recipe`` gives the input shape and the dataset;
        ``pretrained`` loads library weights (``teacher.kind = "pretrained"``) or raises ``AipError``.
        """
        ...

    def data(self, recipe: Recipe[S, A], *, split: Literal["train", "test"], train: bool) -> LabelledData:
        """The labelled ``split`` of ``recipe.eval.dataset``; ``train`` adds the light augmentation used to
        train a teacher."""
        ...

    def describe_source(self, recipe: Recipe[S, A]) -> str:
        """A short name of the single datum for reports and model cards (e.g. its URI)."""
        ...

    def preview(self, views: torch.Tensor, path: Path) -> list[Path]:
        """Render a batch of views (what the student sees) to ``path`` (PNG); return files written."""
        ...

    def catalog(self) -> dict[str, list[str]]:
        """Names users can put in recipes: ``{"models": [...], "datasets": [...], "sources": [...]}``."""
        ...

    def example(self) -> dict[str, Any]:
        """A small recipe (TOML data) whose sampler, augmenter and models build here, offline, in seconds:
        the conformance test (``tests/core/test_conformance.py``) runs every installed modality's through one
        batch of sampler, augmenter, teacher and student."""
        ...


@runtime_checkable
class ReferencePipeline(Protocol):
    """Optional: the conventional pipeline this modality's data path replaces, for ``aip bench
    --vs-reference`` (for images, the paper's per-image PIL augmentation of pre-generated patches)."""

    def reference_pipeline(self, recipe: Recipe, *, root: Path, batch_size: int, workers: int,
                           count: int) -> Iterable[Any]:
        """A re-iterable loader of ``batch_size`` views per batch (the views first in each batch), made from
        ``count`` pre-generated samples written under ``root``, with ``workers`` DataLoader workers."""
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
class Capturable(Protocol):
    """Optional, for a sampler or augmenter: ``capturable = True`` says that, built for a CUDA graph
    (:func:`aip.graphs.wanted`), it draws all randomness on the device and never reads the device from the
    host, so the core may capture the data path once and replay it (:mod:`aip.graphs`)."""

    capturable: bool


@runtime_checkable
class Visuals(Protocol):
    """The input parametrisation and rendering of :mod:`aip.visualize` (feature visualisation by activation
    maximisation) for one recipe's kind of input, as :meth:`Visualizer.visuals` returns it."""

    def params(self, count: int, *, generator: torch.Generator) -> torch.Tensor:
        """Trainable parameters for ``count`` inputs (e.g. decorrelated Fourier coefficients), small random."""
        ...

    def input(self, params: torch.Tensor) -> torch.Tensor:
        """Differentiable map from the parameters to a batch of inputs the model takes, in its value range."""
        ...

    def transform(self, x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """A random jitter/scale/rotation (or their analogue for the data kind) of a batch, differentiable."""
        ...

    def render(self, inputs: dict[str, torch.Tensor], labels: list[str], path: Path) -> list[Path]:
        """Write the optimised inputs, one row per model in ``inputs`` (``{"student": x, "teacher": x}``) and
        one column per class named in ``labels``, to ``path`` (PNG, plus WAV/GIF where the data kind has one);
        return the files written."""
        ...


@runtime_checkable
class Visualizer(Protocol):
    """Optional capability: feature visualisation (``aip visualize``) of this modality's inputs."""

    def visuals(self, recipe: Any) -> Visuals:
        """The :class:`Visuals` of ``recipe``'s inputs (their shape, rate or channels taken from it); heavy
        imports happen here, not at plugin load."""
        ...


@runtime_checkable
class SourceMeasures(Protocol):
    """Optional capability: measures of the single source datum that may predict how well it distils
    (``aip source-stats``, and the x axis of a sweep report's scatter), e.g. its compressed size."""

    def source_measures(self, recipe: Any) -> dict[str, float]:
        """Numbers describing ``recipe``'s source datum, computed the same way for every source of this kind
        (e.g. at a fixed resolution), keyed by a name that says the unit (``png_bytes``). Raises ``AipError``
        when the source is not one datum (``dataset:train``)."""
        ...


@dataclass(frozen=True)
class DataPresence:
    """Whether a recipe's labelled dataset is on this machine, as :class:`DataLocator` reports it.

    Attributes:
        present: its test split is readable where the recipe says (``eval.root`` or the dataset cache).
        where: the folder looked in.
        detail: when present, what was found (e.g. "10000 test items"); when absent, what is missing.
        fetch: when absent, how a run gets it: ``"download"`` (a downloader, needs the network), ``"build"``
            (made here on first use, offline) or ``""`` (it cannot: the user must provide the files).
    """

    present: bool
    where: str
    detail: str = ""
    fetch: Literal["", "download", "build"] = ""


@runtime_checkable
class DataLocator(Protocol):
    """Optional capability: say whether the recipe's dataset is here before a run needs it (``aip check``'s
    preflight, :mod:`aip.preflight`). It must neither download nor build anything."""

    def data_presence(self, recipe: Any) -> DataPresence:
        """Look for the test split of ``recipe.eval.dataset`` where the modality's ``data`` would read it."""
        ...
