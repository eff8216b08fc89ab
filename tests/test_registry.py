"""Name registries and modality discovery through entry points."""

import pytest

from aip.errors import AipError
from aip.registry import Registry, installed_modalities, load_modality


def test_registry_get_and_errors_list_known_names():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha")(1)
    reg.register("beta")(2)
    assert reg.get("beta") == 2 and reg.names() == ["alpha", "beta"] and "alpha" in reg
    with pytest.raises(AipError, match=r"unknown widget 'alpah' \(did you mean 'alpha'\?\); known: alpha, beta"):
        reg.get("alpah")
    with pytest.raises(ValueError, match="twice"):
        reg.register("alpha")(3)


def test_image_modality_is_found_through_its_entry_point():
    assert "image" in installed_modalities()
    image = load_modality("image")
    assert image.name == "image"
    assert {"models", "datasets", "sources"} <= set(image.catalog())


def test_core_never_imports_a_modality():
    """Dependencies point inward: nothing in aip/ imports modalities/ or a modality library."""
    import pathlib
    import re

    core = pathlib.Path(__file__).resolve().parents[1] / "aip"
    banned = re.compile(r"^\s*(from|import)\s+(modalities|torchvision|torchaudio|pytorchvideo|timm|kornia)\b", re.M)
    offenders = [p.name for p in core.rglob("*.py") if banned.search(p.read_text())]
    assert offenders == []
