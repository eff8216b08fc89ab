"""A distilled student outside training: :func:`load_student` rebuilds it from a run directory or an export
folder (no dataset, no recipe file) and :meth:`Student.predict` classifies raw inputs (files or arrays).

A run directory holds ``best.pt`` (or ``last.pt``) with the student's weights and the resolved recipe; an
export folder (``aip export``) holds ``model.safetensors`` and ``config.json``. Class names come from the
checkpoint, else from ``metrics.json``, else they are ``class_0 ... class_{K-1}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aip import checkpoint
from aip.errors import AipError, UsageError
from aip.modality import InputReader
from aip.recipe import Recipe, from_dict
from aip.registry import load_modality

CONFIG, WEIGHTS = "config.json", "model.safetensors"


@dataclass(frozen=True)
class Prediction:
    """The classes of one input, most likely first: ``labels[i]`` has probability ``probs[i]``."""

    input: str
    labels: list[str]
    probs: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "top": [{"label": k, "prob": p} for k, p in zip(self.labels, self.probs)]}


class Student(nn.Module):
    """A student classifier with what it needs to be used: class names, its recipe and its modality.

    Calling it maps a batch of views to logits, like the trained model (``student.net``) does.
    """

    def __init__(self, net: nn.Module, *, classes: list[str], recipe: Recipe, modality: Any, source: Path,
                 metrics: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.net = net
        self.classes = list(classes)
        self.recipe = recipe
        self.modality = modality
        self.source = source
        self.metrics = dict(metrics or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def input_spec(self) -> dict[str, Any]:
        """What the model takes (shape of one view, value range, rate or frames, preprocessing)."""
        return self._reader().input_spec(self.recipe)

    def _reader(self) -> InputReader:
        if not isinstance(self.modality, InputReader):
            raise AipError(f"modality {self.recipe.modality!r} cannot read raw inputs (it has no read_input); "
                           "feed tensors to the student directly")
        return self.modality

    def views(self, item: Any) -> torch.Tensor:
        """``item`` (a file path or an array) as a batch of views ``(V, *view_shape)`` the model takes."""
        reader = self._reader()
        x = reader.read_input(self.recipe, item)
        rank = len(reader.input_spec(self.recipe)["shape"])
        return x.unsqueeze(0) if x.dim() == rank else x

    @torch.no_grad()
    def probabilities(self, item: Any) -> torch.Tensor:
        """Class probabilities ``(K,)`` of one raw input (the softmax averaged over its views)."""
        return self.batch_probabilities([self.views(item)])[0]

    @torch.no_grad()
    def batch_probabilities(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        """Class probabilities ``(K,)`` of each input given as its views ``(V_i, *view_shape)``, in one forward
        pass over all their views (each input's softmax averaged over its own views)."""
        x = torch.cat(views).to(self.device)  # (sum V_i, *view_shape)
        probs = self.net(x).float().softmax(-1).cpu()
        return [p.mean(0) for p in probs.split([len(v) for v in views])]

    def predict_views(self, named: list[tuple[str, torch.Tensor]], *, top_k: int = 5) -> list[Prediction]:
        """The ``top_k`` classes of each ``(name, views)`` pair, in one forward pass (:meth:`batch_probabilities`)."""
        if not named:
            return []
        out = []
        for (name, _), probs in zip(named, self.batch_probabilities([v for _, v in named])):
            top = probs.topk(min(top_k, probs.numel()))
            out.append(Prediction(name, [self.classes[i] for i in top.indices.tolist()], top.values.tolist()))
        return out

    def predict(self, inputs: Any, *, top_k: int = 5, batch_size: int = 32) -> Prediction | list[Prediction]:
        """The ``top_k`` classes of a raw input (a path, an image/waveform array or a clip tensor), or of
        each input of a list/tuple (then a list is returned), ``batch_size`` inputs to a forward pass."""
        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, got {batch_size}")
        many = isinstance(inputs, (list, tuple))
        items = list(inputs) if many else [inputs]
        out: list[Prediction] = []
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            out += self.predict_views([(input_name(item), self.views(item)) for item in chunk], top_k=top_k)
        return out if many else out[0]


def input_name(item: Any) -> str:
    """How a prediction names its input: the path as given, else ``<ndarray>``, ``<Tensor>`` ..."""
    return str(item) if isinstance(item, (str, Path)) else f"<{type(item).__name__}>"


def _classes_in(state: dict[str, torch.Tensor]) -> int:
    """Output size of a classifier state dict (:func:`aip.checkpoint.classes_in`), or a one-line error."""
    k = checkpoint.classes_in(state)
    if k is None:
        raise AipError("the checkpoint's student has no linear classifier weight to take the class count from")
    return k


def class_names(k: int, *candidates: Any) -> list[str]:
    """The first candidate that is a list of ``k`` names, else ``class_0 ... class_{k-1}``."""
    for c in candidates:
        if isinstance(c, list) and len(c) == k:
            return [str(x) for x in c]
    return [f"class_{i}" for i in range(k)]


def build_student(recipe: Recipe, state: dict[str, torch.Tensor], *, num_classes: int, where: Path) -> nn.Module:
    """The recipe's student architecture with ``state`` loaded, in eval mode."""
    modality = load_modality(recipe.modality)
    checkpoint.check_finite(state, what=f"the student in {where}")
    # first on the meta device (no memory): a recipe edited to a huge width, or a class count the weights do not
    # have, is refused here instead of being allocated
    try:
        with torch.device("meta"):
            shell = modality.model(recipe.student, recipe=recipe, num_classes=num_classes, pretrained=False)
    except AipError:
        raise
    except Exception as e:  # a crafted recipe's kwargs the builder cannot take
        raise AipError(f"the recipe in {where} does not build its student ({type(e).__name__}: "
                       f"{str(e).strip()[:100]})".replace("\n", " ")) from None
    fitted, own = checkpoint.fit_keys(shell, state), shell.state_dict()
    wrong = [k for k in own if k not in fitted or getattr(fitted[k], "shape", None) != own[k].shape]
    if wrong or len(fitted) != len(own):
        first = wrong[0] if wrong else next(k for k in fitted if k not in own)
        raise AipError(f"the weights in {where} do not fit student.arch {recipe.student.arch!r} with "
                       f"{num_classes} classes (first: {first}); export the run again")
    net = modality.model(recipe.student, recipe=recipe, num_classes=num_classes, pretrained=False)
    try:
        net.load_state_dict(checkpoint.fit_keys(net, state))  # also with module. or _orig_mod. prefixes
    except RuntimeError as e:
        raise AipError(f"the weights in {where} do not fit student.arch {recipe.student.arch!r} "
                       f"({str(e).strip().splitlines()[0]})") from None
    return net.eval()


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path`` ({} when there is no file), or a one-line error for anything else."""
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise AipError(f"{path} is not valid JSON; re-create it (aip eval or aip export)") from None
    if not isinstance(data, dict):
        raise AipError(f"{path} holds a JSON {type(data).__name__}, not an object; re-create it (aip eval or aip "
                       "export)")
    return data


def _class_count(given: Any, weights: dict[str, torch.Tensor], where: Path) -> int:
    """The class count: the rows of the classifier in ``weights``; a ``num_classes`` saved beside them must
    agree (a hand-edited value would otherwise build a head of any size)."""
    k = _classes_in(weights)
    if given not in (None, k):
        raise AipError(f"{where} says num_classes = {str(given)[:40]}, but its weights have {k} classes; export "
                       "the run again")
    return k


def _recipe_in(data: Any, where: Path) -> Recipe:
    """The resolved recipe saved in a checkpoint or config.json, or a one-line error if it was edited into
    something that is not a recipe."""
    if not isinstance(data, dict):
        raise AipError(f"the recipe in {where} is a {type(data).__name__}, not a table; export the run again")
    try:
        return from_dict(data, check_files=False)
    except AipError as e:
        raise AipError(f"the recipe in {where} is not valid ({e})") from None
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as e:
        raise AipError(f"the recipe in {where} is not valid ({type(e).__name__}); export the run again") from None


def _from_run(run: Path, checkpoint_name: str = "best.pt"
              ) -> tuple[Recipe, dict[str, torch.Tensor], list[str], dict[str, Any]]:
    names = dict.fromkeys((checkpoint_name, "best.pt", "last.pt"))
    path = next((run / n for n in names if (run / n).is_file()), None)
    if path is None:
        raise UsageError(f"{run} holds no best.pt or last.pt; pass a run directory of `aip run` or an export folder")
    state = checkpoint.load(path)
    if "student" not in state or "recipe" not in state:
        raise AipError(f"{path} is not a student checkpoint of aip run (no 'student' or 'recipe' in it)")
    recipe = _recipe_in(state["recipe"], path)
    weights = state["student"]
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise AipError(f"{path} has no student state dict; pass a run directory of `aip run`")
    metrics = _read_json(run / "metrics.json")
    k = _class_count(state.get("num_classes"), weights, path)
    return recipe, weights, class_names(k, state.get("classes"), metrics.get("classes")), metrics


def _from_export(folder: Path) -> tuple[Recipe, dict[str, torch.Tensor], list[str], dict[str, Any]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config = _read_json(folder / CONFIG)
    if "recipe" not in config:
        raise AipError(f"{folder / CONFIG} has no recipe; is {folder} a folder written by `aip export`?")
    try:
        weights = load_file(folder / WEIGHTS)
    except (SafetensorError, OSError) as e:
        raise AipError(f"cannot read {folder / WEIGHTS} ({str(e).splitlines()[0]}); export the run again") from None
    recipe = _recipe_in(config["recipe"], folder / CONFIG)
    k = _class_count(config.get("num_classes"), weights, folder / CONFIG)
    metrics = config.get("metrics", {})
    return recipe, weights, class_names(k, config.get("classes")), metrics if isinstance(metrics, dict) else {}


def load_student(path: str | Path, *, device: str | torch.device = "cpu", which: str = "best.pt") -> Student:
    """The student of a run directory (``which``: ``best.pt`` by default, else ``last.pt``, the final
    student), of an ``aip export`` folder, or of an export pushed to the Hugging Face Hub (``"user/repo"``,
    when no local folder has that name: downloaded into the Hub's cache, or read from it alone with
    ``HF_HUB_OFFLINE=1``), in eval mode on ``device``; needs neither the dataset nor the recipe file.

    Example:
        >>> student = aip.load_student("runs/fashion-mnist")
        >>> student.predict("shoe.png").labels[0]
        'Sneaker'
    """
    p = Path(path).expanduser()
    if not p.exists() and isinstance(path, str):
        from aip.hub import download_student, is_repo_id

        if is_repo_id(path):
            p = download_student(path)
    if not p.is_dir():
        raise UsageError(f"{p} is not a folder; pass a run directory (runs/NAME), an export folder or a Hugging "
                         "Face Hub repo id (user/repo)")
    if (p / CONFIG).is_file():
        recipe, weights, classes, metrics = _from_export(p)
    else:
        recipe, weights, classes, metrics = _from_run(p, which)
    net = build_student(recipe, weights, num_classes=len(classes), where=p)
    student = Student(net, classes=classes, recipe=recipe, modality=load_modality(recipe.modality), source=p,
                      metrics=metrics)
    return student.to(torch.device(device)).eval()
