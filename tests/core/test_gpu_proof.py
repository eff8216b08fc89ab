"""scripts/gpu_proof.sh dry-run on the CPU at a tiny scale: a fake Fashion-MNIST folder in the real idx.gz format,
a few hundred views, one bench; its log, summary, run folders, bench record and the regenerated page."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_proof.sh"
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def write_fake_fashion_mnist(folder: Path, *, train: int = 200, test: int = 100) -> Path:
    """The four idx files, gzipped, as the Debian package ships them: images are class-dependent stripes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("t10k", test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, y in enumerate(labels):
            images[i, :, 2 * y:2 * y + 4] = 250
        with gzip.open(folder / f"{split}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        with gzip.open(folder / f"{split}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + labels.tobytes())
    return folder


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PY": sys.executable, "AIP_PROOF_DEVICE": "cpu", "AIP_PROOF_VIEWS": "512",
           "AIP_PROOF_EPOCHS": "2", "AIP_PROOF_BATCH": "32", "AIP_PROOF_TEACHER_EPOCHS": "1",
           "AIP_PROOF_TEACHER_BATCH": "32",
           "AIP_PROOF_TEACHER_ARCH": "cnn", "AIP_PROOF_STUDENT_ARCH": "cnn", "AIP_PROOF_LOG_GRID": "2",
           "AIP_PROOF_BENCH": "fashion-mnist:10", "AIP_PROOF_KINETICS": "0", "AIP_PROOF_BENCH_STEPS": "1",
           "AIP_PROOF_DOCS": str(tmp / "docs" / "reproduction"), "AIP_PROOF_PAGE": str(tmp / "docs" / "page.md"),
           "AIP_PROOF_ROOT": str(tmp), "AIP_CACHE": str(tmp / "cache"), "OMP_NUM_THREADS": "1"}
    env.update(extra)
    return env


def _inputs(tmp: Path) -> None:
    (tmp / "docs" / "reproduction").mkdir(parents=True)
    shutil.copy(REPO / "docs" / "reproduction" / "paper.toml", tmp / "docs" / "reproduction" / "paper.toml")


@pytest.mark.slow
def test_gpu_proof_dry_run_on_cpu(tmp_path: Path) -> None:
    data = write_fake_fashion_mnist(tmp_path / "fmnist")
    _inputs(tmp_path)
    log = tmp_path / "proof.log"
    p = subprocess.run(["bash", str(SCRIPT), str(data), str(log)], cwd=REPO, env=_env(tmp_path),
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr + log.read_text()[-4000:]
    summary = (tmp_path / "proof.log.summary").read_text()
    for name in ("teacher: exit 0", "one-photo: exit 0", "dataset-train: exit 0", "bench-fashion-mnist: exit 0",
                 "reproduction: exit 0", "views to 90 %"):
        assert name in summary, summary
    assert "=== one-photo: " in log.read_text()
    docs = tmp_path / "docs" / "reproduction"
    for variant in ("one-photo", "dataset-train"):
        run = docs / "measured" / "fashion-mnist-gpu" / variant
        prov = json.loads((run / "provenance.json").read_text())
        assert len(prov["teacher_sha256"]) == 64 and "CPU" in prov["machine"]
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["steps"] * metrics["effective_batch"] >= 512
        assert (run / "curve.png").is_file() and not list(run.glob("*.pt"))
    record = json.loads((docs / "bench" / "gpu-proof-fashion-mnist.json").read_text())
    assert record["kind"] == "aip-bench-record" and record["recipe"] == "fashion-mnist"
    assert {p["processes"] for p in record["projections"] if p["what"] == "distillation"} == {1, 8}
    page = (tmp_path / "docs" / "page.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| `fashion-mnist-gpu` |"))
    assert "measured on a proxy" in row and "sha256" in row  # 512 views: not the 10 M of the paper's scale
    row = next(line for line in page.splitlines() if line.startswith("| `fashion-mnist` |"))
    assert "projected only" in row  # the bench record just written, no run folder under this root
    assert "has not run yet" in page  # the dry run was on the CPU


def test_gpu_proof_refuses_a_folder_without_the_idx_files(tmp_path: Path) -> None:
    (tmp_path / "fmnist").mkdir()
    (tmp_path / "fmnist" / "train-images-idx3-ubyte.gz").write_bytes(b"x")
    p = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "fmnist"), str(tmp_path / "log")], cwd=REPO,
                       env=_env(tmp_path), capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "train-labels-idx1-ubyte.gz is missing" in p.stderr
    p = subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=_env(tmp_path), capture_output=True, text=True)
    assert p.returncode == 2 and "usage" in p.stderr
