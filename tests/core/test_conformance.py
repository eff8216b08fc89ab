"""Every installed modality keeps the contract of :class:`aip.modality.Modality`, checked by the functions aip
ships for plugins' own suites (:mod:`aip.testing`): its example recipe validates, and one batch goes through
sampler, augmenter, teacher and student with finite logits of matching shapes.

A new plugin gets these tests for free once installed (the toy plugin runs them from its own tests, out of
tree, in tests/core/test_plugin.py). The plugin SDK (:mod:`aip.plugin`) holds every name a modality takes from aip.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import aip.plugin
from aip import testing
from aip.modality import Modality
from aip.registry import installed_modalities, load_modality

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=installed_modalities())
def modality(request) -> Modality:
    return load_modality(request.param)


def test_it_implements_the_protocol(modality):
    testing.check_protocol(modality)


def test_one_batch_through_sampler_augmenter_teacher_and_student(modality):
    testing.check_one_batch(modality, testing.example_recipe(modality))


def test_parts_marked_capturable_read_nothing_back(modality):
    """Where a modality marks its sampler and augmenter capturable, they really read nothing from the device
    (checked on the CPU with graphs.forbid_host_reads), so a CUDA graph can capture them."""
    if not testing.check_capturable(modality, testing.example_recipe(modality)):
        pytest.skip(f"modality {modality.name!r} does not mark its data path capturable")


class Broken:
    """The image modality with one fault planted (``fault``), to see each check fail."""

    def __init__(self, fault: str) -> None:
        self._inner, self._fault = load_modality("image"), fault

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def catalog(self):
        return {**self._inner.catalog(), "models": []} if self._fault == "catalog" else self._inner.catalog()

    def augmenter(self, recipe, *, device):
        inner = self._inner.augmenter(recipe, device=device)
        if self._fault == "shape":
            return lambda x: inner(x)[..., :-1]
        if self._fault == "nan":
            return lambda x: inner(x) * float("nan")
        if self._fault == "host-read":
            inner.capturable = True

            def reads(x):
                float(x.sum())  # the host reads the device: a CUDA graph could not capture this
                return inner(x)

            reads.capturable = True
            return reads
        return inner

    def model(self, spec, *, recipe, num_classes, pretrained):
        net = self._inner.model(spec, recipe=recipe, num_classes=num_classes, pretrained=pretrained)
        if self._fault == "logits":
            return torch.nn.Sequential(net, torch.nn.Linear(num_classes, num_classes + 1))
        return net


@pytest.fixture(scope="module")
def image_recipe():
    return testing.example_recipe(load_modality("image"))


@pytest.mark.parametrize(("fault", "check", "message"), [
    ("catalog", "check_protocol", "catalog() lists no models"),
    ("shape", "check_one_batch", "the augmenter changed the views' shape"),
    ("nan", "check_one_batch", "the augmented views hold non-finite values"),
    ("logits", "check_one_batch", "the teacher must return logits (2, 5)"),
    ("host-read", "check_capturable", "marks its data path capturable, but it reads the device from the host"),
])
def test_each_check_fails_on_its_fault(image_recipe, fault, check, message):
    """Each check of aip.testing fails, naming the modality and the fault, on a modality with that fault
    (and check_modality, which runs them all, with it)."""
    broken = Broken(fault)
    pattern = message.replace("(", r"\(").replace(")", r"\)")
    args = () if check == "check_protocol" else (image_recipe,)
    with pytest.raises(testing.ConformanceError, match=f"modality 'image': {pattern}"):
        getattr(testing, check)(broken, *args, **({"batch": 2} if args else {}))
    if fault == "catalog":
        with pytest.raises(testing.ConformanceError, match=pattern):
            testing.check_modality(broken, image_recipe)


def _imported_from_aip(files: list[Path]) -> dict[str, set[str]]:
    """``{aip module: names}`` that ``files`` import from aip (``from aip.X import name``)."""
    found: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "aip":
                found.setdefault(node.module, set()).update(a.name for a in node.names)
    return found


def test_the_plugin_sdk_holds_what_the_built_in_modalities_use():
    """Each name a built-in modality takes from aip (they are plugins like any other) is in aip.plugin, the same
    object; the modules they import whole are their own (graphs, files: their functions are re-exported)."""
    used = _imported_from_aip(sorted((ROOT / "modalities").rglob("*.py")))
    missing = [f"{module}.{name}" for module, names in used.items() if module not in ("aip", "aip.plugin")
               for name in names if not hasattr(aip.plugin, name)]
    assert not missing, f"add to aip/plugin.py: {missing}"
    for module, names in used.items():
        home = __import__(module, fromlist=["_"])
        for name in names & set(aip.plugin.__all__):
            assert getattr(aip.plugin, name) is getattr(home, name), f"{module}.{name}"


def test_the_toy_plugin_imports_only_the_sdk():
    """The example plugin, the model for third-party ones, takes everything from aip.plugin and aip.testing."""
    plugin = ROOT / "examples" / "aip-toy-plugin"
    used = _imported_from_aip(sorted(plugin.rglob("*.py")))
    assert set(used) <= {"aip.plugin", "aip.testing"}, used
    assert "aip.testing" in used  # its own tests call the shipped checks
