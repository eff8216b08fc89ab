"""Shared fixtures: an isolated cache, a small labelled image set on disk, and a tiny recipe that uses it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own ``AIP_CACHE`` so cached teachers never leak between tests."""
    cache = tmp_path_factory.mktemp("aip-cache")
    monkeypatch.setenv("AIP_CACHE", str(cache))
    return cache


def stripes(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """A textured image whose class is (stripe orientation) x (warm or cool colour): 4 classes."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    freq = rng.uniform(0.25, 0.6)
    phase = rng.uniform(0, 2 * np.pi)
    coord = yy if label % 2 == 0 else xx
    wave = 0.5 + 0.5 * np.sin(coord * freq + phase)  # (H, W)
    warm = np.array([0.9, 0.45, 0.1]) if label < 2 else np.array([0.1, 0.45, 0.9])
    colour = np.clip(warm + rng.normal(0, 0.08, 3), 0, 1)
    img = wave[..., None] * colour[None, None] + rng.normal(0, 0.05, (size, size, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_stripes_folder(root: Path, *, size: int = 24, train_per_class: int = 60, test_per_class: int = 25) -> Path:
    """An ``imagefolder`` dataset (train/ and val/ of class folders of PNGs) with 4 learnable classes."""
    rng = np.random.default_rng(0)
    for split, n in (("train", train_per_class), ("val", test_per_class)):
        for label, name in enumerate(["warm_h", "warm_v", "cool_h", "cool_v"]):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(stripes(rng, label, size)).save(d / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def stripes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stripes_folder(tmp_path_factory.mktemp("stripes"))


def distil(arch: str, *, fit: dict[str, Any], temperature: float, train: dict[str, Any],
           kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The [teacher], [student], [loss] and [train] sections the tiny test recipes share (TOML data): a teacher of
    ``arch`` at width 8 (plus ``kwargs``) trained from scratch with ``fit`` at learning rate 5e-3, a student of the
    same network, distilled at ``temperature`` in batches of 64 with the keys in ``train``."""
    net = {"width": 8, **(kwargs or {})}
    return {"teacher": {"kind": "train", "arch": arch, "kwargs": net, "fit": {**fit, "lr": 5e-3}},
            "student": {"arch": arch, "kwargs": net},
            "loss": {"temperature": temperature},
            "train": {"batch_size": 64, **train}}


def write_toml(path: Path, recipe: dict[str, Any]) -> Path:
    """Write ``recipe`` (TOML data) to ``path`` as TOML; return ``path``."""
    path.write_text(tomli_w.dumps(recipe))
    return path


#: A recipe that trains a teacher on the stripes set and distils a student from one photo, in seconds, as a
#: ``str.format`` template: ``TINY_RECIPE.format(root=FOLDER, epochs=N)``. The field ``epochs`` loses its
#: quotes, so it is filled as a number.
TINY_RECIPE = tomli_w.dumps({
    "modality": "image", "name": "tiny",
    "source": {"uri": "skimage:astronaut", "size": 24, "channels": 3},
    "augment": {"crop": "pad", "pad": 2, "solarize_p": 0.0},
    **distil("cnn", fit={"epochs": 4, "batch_size": 32}, temperature=4.0,
             train={"epochs": "{epochs}", "samples_per_epoch": 1024, "lr": 1e-2, "schedule": "cosine",
                    "view_pool": 2, "log_every": 4}),
    "eval": {"dataset": "imagefolder", "root": "{root}", "batch_size": 100},
}).replace('"{epochs}"', "{epochs}")


@pytest.fixture
def tiny_recipe(tmp_path: Path, stripes_root: Path) -> Path:
    """A recipe that trains a teacher on the stripes set and distils a student from one photo, in seconds."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_RECIPE.format(root=stripes_root.as_posix(), epochs=6))
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float | None = None):
    """Run ``python -m aip ARGS`` in a subprocess; returns the CompletedProcess (text mode).

    No wall-clock limit by default: a slow or loaded machine must not fail a test that pytest's own
    ``--timeout`` would let finish."""
    import os
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "aip", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=timeout)


def one_line(e: pytest.ExceptionInfo, *fragments: str) -> str:
    """The message of an expected error: one line, holding each of ``fragments``."""
    msg = str(e.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg
