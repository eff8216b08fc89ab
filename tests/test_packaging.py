"""Packaging promises: Python 3.10 (tomli fallback, no 3.11-only syntax or modules), per-modality extras so an
image-only install needs neither PyAV, pytorchvideo nor audio libraries, and one-line errors naming the extra."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from tests.conftest import ROOT

BLOCK = "import sys\nfor m in {mods!r}:\n    sys.modules[m] = None  # as if not installed\n"


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)


def test_recipes_parse_without_tomllib_as_on_python_310(tiny_recipe):
    code = BLOCK.format(mods=["tomllib"]) + (
        "import aip.recipe as r\n"
        f"print(r.tomllib.__name__, r.load({str(tiny_recipe)!r}, ['train.epochs=2']).train.epochs)\n")
    p = run_python(code)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["tomli", "2"]


def test_code_needs_nothing_newer_than_python_310():
    vermin = shutil.which("vermin", path=str(Path(sys.executable).parent)) or shutil.which("vermin")
    if vermin is None:
        pytest.skip("vermin (in the [test] extra) is not installed")
    # tomllib is excluded: its 3.10 fallback is tested above
    p = subprocess.run([vermin, "-t=3.10-", "--no-tips", "--violations", "--exclude", "tomllib", "aip", "modalities"],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr


def test_image_only_install_needs_no_video_or_audio_packages():
    code = BLOCK.format(mods=["av", "pytorchvideo", "soundfile", "torchaudio"]) + (
        "from aip.errors import AipError\n"
        "from aip.recipe import load\n"
        "from aip.registry import load_modality\n"
        "from aip.run import describe_models\n"
        "print(sorted(describe_models(load('recipes/fashion-mnist.toml'))))\n"
        "for name in ('video', 'audio'):\n"
        "    try:\n"
        "        load_modality(name)\n"
        "    except AipError as e:\n"
        "        print(e)\n")
    p = run_python(code)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "['student cnn', 'teacher cnn']"
    assert "the video modality needs av, pytorchvideo" in lines[1] and "pip install 'aip[video]'" in lines[1]
    assert "pip install 'aip[audio]'" in lines[2]


def test_pyproject_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [d.split(">")[0].split(";")[0].split("=")[0].strip() for d in project["dependencies"]]
    for heavy in ("av", "pytorchvideo", "soundfile", "torchaudio", "onnx", "tensorboard"):
        assert heavy not in names, heavy
    core = " ".join(project["dependencies"])
    extras = project["optional-dependencies"]
    assert any(d.startswith("pytorchvideo") for d in extras["video"])
    assert any(d.startswith("soundfile") for d in extras["audio"])
    assert any(d.startswith("onnxruntime") for d in extras["export"])
    assert any(d.startswith("tensorboard") for d in extras["tensorboard"])
    assert "tomli" in core and "python_version < '3.11'" in core
    assert "'.[all,test]'" in (ROOT / "Makefile").read_text()
