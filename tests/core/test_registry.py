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


BANNED = ("modalities", "torchvision", "torchaudio", "pytorchvideo", "timm", "kornia", "av", "librosa")


def _imports(path):
    """Every module a file imports, at any depth (function-level imports included), from its syntax tree."""
    import ast

    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_core_never_imports_a_modality():
    """Dependencies point inward: nothing in aip/ imports modalities/ or a modality library (real imports,
    read from each file's syntax tree, wherever they are)."""
    import pathlib

    core = pathlib.Path(__file__).resolve().parents[2] / "aip"
    offenders = {f"{p.name}: {m}" for p in core.rglob("*.py") for m in _imports(p) if m.split(".")[0] in BANNED}
    assert offenders == set()


def test_the_import_check_sees_imports_inside_functions(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    if True:\n        from modalities.image import source\n")
    assert _imports(bad) == ["modalities.image"]


def test_importing_the_whole_core_loads_no_modality():
    """Importing every core module (the CLI included) leaves no modality or modality library in sys.modules."""
    import subprocess
    import sys

    code = ("import pkgutil, importlib, sys, aip\n"
            "for m in pkgutil.iter_modules(aip.__path__): importlib.import_module('aip.' + m.name)\n"
            f"print(sorted(n for n in sys.modules if n.split('.')[0] in {BANNED!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

