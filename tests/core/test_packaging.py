"""Packaging promises: Python 3.10 (tomli fallback, no 3.11-only syntax or modules), per-modality extras so an
image-only install needs neither PyAV, pytorchvideo nor audio libraries, and one-line errors naming the extra."""

import os
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


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_listed_for_the_wheel():
    """The wheel's packages are listed (to map recipes/ as aip/recipes); a new package folder must be added."""
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for top in ("aip", "modalities")
             for p in (ROOT / top).rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
    assert {"aip.recipes", "aip.recipes.sweeps"} <= listed


def test_constraints_satisfy_the_declared_ranges():
    """The tested pins (constraints.txt) lie inside pyproject's ranges, and the torch trio's floors are the
    tested minor versions (the floors are what is tested, not older releases nothing installs)."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    project = _pyproject()["project"]
    ranges = [Requirement(d) for d in project["dependencies"]]
    ranges += [Requirement(d) for extra in project["optional-dependencies"].values() for d in extra
               if not d.startswith("aip[")]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (pin,) = req.specifier
            assert pin.operator == "==", line
            pins[req.name] = Version(pin.version)
    assert {"torch", "torchvision", "torchaudio"} <= set(pins)
    for req in ranges:
        if req.name in pins:
            assert req.specifier.contains(pins[req.name]), (str(req), str(pins[req.name]))
            floor = next(Version(s.version) for s in req.specifier if s.operator == ">=")
            assert floor.release[:2] == pins[req.name].release[:2], (str(req), "floor is not the tested minor")


def test_license_and_citation():
    project = _pyproject()["project"]
    assert project["license"] == "MIT" and "Permission is hereby granted" in (ROOT / "LICENSE").read_text()
    assert project["authors"] and project["classifiers"] and "Paper" in project["urls"]
    import yaml  # matplotlib's and huggingface_hub's dependency

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    paper = cff["preferred-citation"]
    assert paper["title"].startswith("The Augmented Image Prior") and paper["year"] == 2023
    assert [a["family-names"] for a in paper["authors"]] == ["Asano", "Saeed"]
    assert cff["version"] == project["version"] and cff["license"] == project["license"]


def _install_wheel(src: Path, tmp_path: Path, py: Path) -> None:
    """Build the wheel of ``src``, check that it carries every shipped recipe and the licence, install it for
    ``py`` alone (no dependencies)."""
    import zipfile

    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp_path / "dist"), str(src)], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (wheel,) = (tmp_path / "dist").glob("aip-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(str(p.relative_to(ROOT / "recipes")) for p in (ROOT / "recipes").rglob("*.toml"))
    assert sorted(n.removeprefix("aip/recipes/") for n in names if n.startswith("aip/recipes/")) == shipped
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    p = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr


@pytest.mark.slow
@pytest.mark.parametrize("install", ["wheel", "editable"])
def test_fresh_virtualenv_runs_a_shipped_recipe_by_name(tmp_path, install):
    """Install a copy of the tree into a new virtualenv, as the built wheel or editable (as `make setup` does),
    alone: its dependencies come from this environment's site-packages, so torch is not downloaded. Then
    `aip check fashion-mnist` runs there, from a folder without recipes/."""
    import site
    import venv

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("aip", "modalities", "recipes"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # this environment's packages (torch, ...) behind the new one's, as --system-site-packages would add them
    Path(purelib, "parent-env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    if install == "wheel":
        _install_wheel(src, tmp_path, py)
    else:
        p = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                            "--no-build-isolation", "-q", "-e", str(src)], capture_output=True, text=True, cwd=tmp_path)
        assert p.returncode == 0, p.stderr

    home = tmp_path / "elsewhere"  # no recipes/ folder here: the name must resolve to the installed copy
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run([str(py), "-c", "import aip, aip.shipped; print(aip.__file__); "
                            "print(aip.shipped.recipes_dir())"], capture_output=True, text=True, cwd=home, env=env)
    assert where.returncode == 0, where.stderr
    package, recipes = map(Path, where.stdout.split())
    if install == "wheel":
        assert package.is_relative_to(env_dir) and recipes == package.parent / "recipes"
    else:
        assert package == src / "aip" / "__init__.py" and recipes == src / "recipes"
    r = subprocess.run([str(env_dir / "bin" / "aip"), "check", "fashion-mnist"], capture_output=True, text=True,
                       cwd=home, env=env)
    assert r.returncode == 0, r.stderr
    assert 'name = "fashion-mnist"' in r.stdout and "# OK" in r.stderr
