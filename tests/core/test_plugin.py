"""The example plugin (examples/aip-toy-plugin), installed OUT OF TREE like any third-party package, works
with the unchanged core: `aip list` finds it, `aip check` validates its recipe, `aip run` distils a student
that clearly beats chance, and a recipe naming a modality nobody installed fails with one line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "aip-toy-plugin"
RECIPE = PLUGIN / "recipe.toml"


def _env(site: Path | None, cache: Path) -> dict[str, str]:
    env = {**os.environ, "AIP_CACHE": str(cache), "MPLBACKEND": "Agg", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           # tiny models on busy cores: torch's intra-op threads would wait on each other for most of the run
           "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return env


def aip(*args: str, site: Path | None, tmp: Path) -> subprocess.CompletedProcess[str]:
    """``python -m aip ARGS`` in ``tmp`` (cache in ``tmp/cache``), with ``site`` as the only PYTHONPATH."""
    return subprocess.run([sys.executable, "-m", "aip", *args], capture_output=True, text=True,
                          env=_env(site, tmp / "cache"), cwd=tmp)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed plugin (and nothing else), to put on PYTHONPATH."""
    tmp = tmp_path_factory.mktemp("toy-plugin")
    # build from a copy, so the build leaves nothing (build/, *.egg-info) in the repository
    src = shutil.copytree(PLUGIN, tmp / "src",
                          ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    target = tmp / "site"
    env = _env(None, tmp / "cache")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(target), str(src)],
                         capture_output=True, text=True, env=env)
    # the test extras install setuptools >= 70.1 and wheel, so this builds offline, as a user's pip would
    assert pip.returncode == 0, f"pip could not install the example plugin:\n{pip.stdout}\n{pip.stderr}"
    assert (target / "aip_toy" / "__init__.py").is_file()
    return target


def test_list_shows_the_plugin_only_when_installed(site: Path, tmp_path: Path) -> None:
    proc = aip("list", "--json", site=site, tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    catalog = json.loads(proc.stdout)
    assert {"image", "toy"} <= set(catalog)
    assert catalog["toy"] == {"models": ["cnn1d", "mlp"], "datasets": ["bands", "bands8"],
                              "sources": ["sines", "random_walk"]}
    # without the folder on the path the core has never heard of it: nothing in the tree provides "toy"
    proc = aip("check", str(RECIPE), site=None, tmp=tmp_path)
    assert proc.returncode == 2
    assert "modality 'toy' is not installed" in proc.stderr


def test_check_validates_with_the_plugins_dataclasses(site: Path, tmp_path: Path) -> None:
    proc = aip("check", str(RECIPE), site=site, tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'modality = "toy"' in proc.stdout
    assert "components = 24" in proc.stdout  # a default filled in by the plugin's SourceConfig
    bad = aip("check", str(RECIPE), "--set", "source.window=8", site=site, tmp=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: recipe key source.window: must be at least 16 samples"
    bad = aip("check", str(RECIPE), "--set", "teacher.kind=pretrained", site=site, tmp=tmp_path)
    assert bad.returncode == 2 and "no pretrained weights" in bad.stderr


def test_unknown_modality_exits_2_with_one_line(site: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "nosuch.toml"
    recipe.write_text(RECIPE.read_text().replace('modality = "toy"', 'modality = "seismic"'))
    proc = aip("check", str(recipe), site=site, tmp=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        "error: modality 'seismic' is not installed; installed modalities: audio, image, toy, video")
    assert "Traceback" not in proc.stderr


def test_run_distils_a_student_from_one_signal(site: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = aip("run", str(RECIPE), "--out", str(run_dir), "--device", "cpu", site=site, tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("chance", "wall_seconds"):
        assert isinstance(metrics[key], (int, float))
    for key in ("top1", "top5"):
        assert 0 <= metrics["student"][key] <= 100
    assert metrics["chance"] == 25.0
    assert metrics["finished"] is True
    assert metrics["teacher"]["top1"] > 90.0
    # measured ~87 %; chance is 25 %
    assert metrics["student"]["top1"] > 2 * metrics["chance"], metrics
    assert (run_dir / "curves.png").is_file() and (run_dir / "recipe.toml").is_file()
    # a third-party modality gets inspection and, with read_input, `aip predict`
    assert set(metrics["per_class"]) == set(metrics["classes"]) and len(metrics["classes"]) == 4
    assert 0 <= metrics["agreement"]["top1"] <= 100
    t = np.arange(128)
    np.save(tmp_path / "slow.npy", np.sin(2 * np.pi * 0.02 * t))  # a pure tone in the lowest band
    proc = aip("predict", str(run_dir), str(tmp_path / "slow.npy"), "--json", "--top-k", "4", site=site, tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    top = json.loads(proc.stdout)[0]["top"]
    assert [t["label"] for t in top][0] == metrics["classes"][0]  # the student hears the band
    assert sorted(t["label"] for t in top) == sorted(metrics["classes"])


def test_the_plugins_own_tests_call_aip_testing(site: Path, tmp_path: Path) -> None:
    """The toy's own suite (examples/aip-toy-plugin/tests, which calls aip.testing.check_modality as any
    plugin's would) passes against the installed copy, and so do the conformance tests every installed
    modality gets (tests/core/test_conformance.py, the same checks), in one pytest run."""
    tests = shutil.copytree(PLUGIN / "tests", tmp_path / "toy-tests")  # out of the tree: aip_toy comes from site
    conformance = str(ROOT / "tests" / "core" / "test_conformance.py")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           str(tests), f"{conformance}::test_it_implements_the_protocol",
                           f"{conformance}::test_one_batch_through_sampler_augmenter_teacher_and_student", "-k", "toy"],
                          capture_output=True, text=True, env=_env(site, tmp_path / "cache"), cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert re.search(r"\b6 passed", proc.stdout), proc.stdout[-2000:]
