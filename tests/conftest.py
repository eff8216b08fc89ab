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


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs one worker per core) each worker, and every ``aip`` process a test
    starts, computes on one thread: two workers of two threads each on two cores only contend."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own ``AIP_CACHE`` so cached teachers never leak between tests."""
    cache = tmp_path_factory.mktemp("aip-cache")
    monkeypatch.setenv("AIP_CACHE", str(cache))
    return cache


@pytest.fixture
def one_thread():
    """Tiny models on a shared CPU: threads only contend. A module takes it for all its tests with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


# ------------------------------------------------------------------------------------------ shared helpers
# The one module of helpers that test files share (no test file imports another): the CLI's error contract, a
# full disk, fake run and sweep folders, tiny video and Speech Commands sets in their real layouts. Heavy
# imports (torch, PyAV, soundfile, the modalities) happen inside the helpers that need them.


def assert_one_line_error(r, *fragments, code: int = 2):
    """One line ``error: ...`` holding ``fragments``, no traceback, exit ``code``: 2 for a usage error (the
    command line or the recipe), 1 for a failure at run time (aip.errors)."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    for f in fragments:
        assert f in lines[0]


def cnn(width: int = 8, classes: int = 4):
    """The image modality's small ``cnn`` (3 channels, fixed normalisation), untrained: a ready teacher or
    checkpoint for tests that need one without training it."""
    from modalities.image.models import build

    return build("cnn", num_classes=classes, in_channels=3, pretrained=False, kwargs={"width": width},
                 dataset_norm=([0.5] * 3, [0.25] * 3))


def full_disk(monkeypatch: pytest.MonkeyPatch, *, room: int = 100) -> None:
    """Files aip opens for writing take ``room`` bytes, then every write fails as on a full disk."""
    import builtins
    import errno
    import os

    from aip import files

    class Full:
        def __init__(self, f) -> None:
            self.f, self.left = f, room

        def write(self, data) -> int:
            if len(data) > self.left:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.left -= len(data)
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.f.close()

    def full_open(file, mode="r", *args, **kwargs):
        f = builtins.open(file, mode, *args, **kwargs)
        return Full(f) if "w" in mode else f

    monkeypatch.setattr(files, "open", full_open, raising=False)


def write_motion_folder(root: Path, *, train_per_class: int = 24, test_per_class: int = 8) -> Path:
    """A ``videofolder`` dataset: ``train/`` and ``val/`` class folders of 8-frame 32 px clips, a textured scene
    moving in one of four directions (the classes need motion to tell apart)."""
    from modalities.video.motion import PANS, moving_texture, write_video

    rng = np.random.default_rng(0)
    for split, n in (("train", train_per_class), ("val", test_per_class)):
        for name in PANS:
            for i in range(n):
                write_video(root / split / name / f"{i:03d}.mp4", moving_texture(rng, name))
    return root


def motion_recipe(tmp_path: Path, root: Path, *, epochs: int = 8) -> Path:
    """The tiny motion-direction set as the target, clips synthesized from one photo as the student's data."""
    return write_toml(tmp_path / "motion.toml", {
        "modality": "video", "name": "motion", "description": "tiny motion-direction set",
        "source": {"uri": "skimage:astronaut", "frames": 4, "size": 32, "stride": 1, "pan_frames": 8, "init_crop": 0.5,
                   "scale": [0.01, 0.2], "data_fps": 8.0, "data_stride": 1, "test_clips": 3, "test_short_side": 32,
                   "train_hflip": 0.0},
        "augment": {"augmix_severity": 2, "short_side": [32, 36], "hflip": 0.5, "cutmix": 1.0},
        **distil("cnn3d", fit={"epochs": 8, "batch_size": 16}, temperature=5.0,
                 train={"epochs": epochs, "samples_per_epoch": 1024, "lr": 5e-3, "schedule": "cosine", "log_every": 8,
                        "channels_last": "off"}),  # 3-D convolutions have no channels-last layout
        "eval": {"dataset": "videofolder", "root": root.as_posix(), "batch_size": 16, "every_epochs": 8},
    })


def fake_sweep(folder: Path, results: dict[str, list[tuple[float, float]]], *, values: dict[str, float],
               stats: dict[str, float] | None = None) -> None:
    """A sweep folder with one axis; ``results[label]`` = (last, best) top-1 per seed."""
    import json

    from aip.sweep import PLAN

    variants = []
    for label, runs in results.items():
        for seed, (last, best) in enumerate(runs):
            name = f"x-{label}_seed-{seed}"
            variants.append({"name": name, "point": {"train.lr": values[label]}, "labels": {"train.lr": label},
                             "seed": seed, "command": f"aip run r.toml --out {name}"})
            d = folder / name
            d.mkdir(parents=True)
            (d / "metrics.json").write_text(json.dumps({
                "finished": True, "student": {"top1": last}, "student_best": {"top1": best, "epoch": 1},
                "teacher": {"top1": 80.0}, "ratio": last / 80.0, "wall_seconds": 120.0 + seed * 60}))
            if stats is not None:
                (d / "source_stats.json").write_text(json.dumps({"png_bytes": stats[label], "source": label}))
    (folder / PLAN).write_text(json.dumps({
        "name": folder.name, "description": "a fake sweep",
        "axes": [{"key": "train.lr", "values": list(values.values()), "labels": list(values)}],
        "report": {"scatter": ["png_bytes"] if stats else []}, "command": "aip sweep s.toml", "variants": variants}))


#: the sample rate and speakers of :func:`write_speechcommands` (speakers 0-3 train, 4 validation, 5 test)
SPEECH_RATE = 16_000
SPEAKERS = [f"{i:08x}" for i in range(6)]


def write_speechcommands(root: Path, words: tuple[str, ...]) -> Path:
    """A small Speech Commands v0.02 tree (torchaudio's layout) of tones: 6 speakers x 2 clips per word."""
    import soundfile as sf

    from modalities.audio import datasets as D

    rate = SPEECH_RATE
    folder = root / "SpeechCommands" / "speech_commands_v0.02"
    rng = np.random.default_rng(0)
    val, test = [], []
    for k, w in enumerate(words):
        (folder / w).mkdir(parents=True)
        for s, spk in enumerate(SPEAKERS):
            for n in range(2):
                length = rate if n == 0 else rate // 2  # some clips are shorter than 1 s
                t = np.arange(length) / rate
                clip = 0.3 * np.sin(2 * np.pi * (200 + 40 * k) * t) + 0.01 * rng.standard_normal(length)
                rel = f"{w}/{spk}_nohash_{n}.wav"
                sf.write(str(folder / rel), clip.astype(np.float32), rate, subtype="PCM_16")
                (val if s == 4 else test if s == 5 else []).append(rel)
    (folder / "validation_list.txt").write_text("\n".join(val) + "\n")
    (folder / "testing_list.txt").write_text("\n".join(test) + "\n")
    (folder / D.NOISE_DIR).mkdir()
    sf.write(str(folder / D.NOISE_DIR / "white_noise.wav"), rng.standard_normal(rate * 5).astype(np.float32) * 0.1,
             rate)
    return root


# fake run folders, saved the way the trainer saves them, with one tiny student per modality
CLASSES = ["alpha", "beta", "gamma"]

TINY_STUDENTS = {
    "image": {"modality": "image", "name": "tiny-image", "source": {"uri": "skimage:astronaut", "size": 16},
              "teacher": {"kind": "train", "arch": "cnn", "kwargs": {"width": 4}},
              "student": {"arch": "cnn", "kwargs": {"width": 4}}, "eval": {"dataset": "imagefolder"}},
    "video": {"modality": "video", "name": "tiny-video",
              "source": {"uri": "skimage:astronaut", "size": 16, "frames": 4, "test_short_side": 20},
              "augment": {"short_side": [16, 20]},
              "teacher": {"kind": "train", "arch": "cnn3d", "kwargs": {"width": 4}},
              "student": {"arch": "cnn3d", "kwargs": {"width": 4}}, "eval": {"dataset": "videofolder"}},
    "audio": {"modality": "audio", "name": "tiny-audio", "source": {"uri": "synthetic:noise", "window": 0.25},
              "teacher": {"kind": "train", "arch": "cnn", "kwargs": {"width": 4, "n_mels": 16}},
              "student": {"arch": "cnn", "kwargs": {"width": 4, "n_mels": 16}}, "eval": {"dataset": "audiofolder"}},
}


def fake_run(root: Path, modality: str, *, classes: bool = True, metrics: dict | None = None) -> Path:
    """``root/modality``: a run directory holding ``best.pt`` of a randomly initialised tiny student, as
    :func:`aip.trainer.fit` writes it (``classes=False``: as older runs did, without class names)."""
    import json

    import torch

    from aip import files
    from aip.recipe import from_dict
    from aip.registry import load_modality

    recipe = from_dict(TINY_STUDENTS[modality], check_files=False)
    torch.manual_seed(0)
    net = load_modality(modality).model(recipe.student, recipe=recipe, num_classes=len(CLASSES), pretrained=False)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode differs from train mode
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    run = root / modality
    state = {"student": net.state_dict(), "recipe": recipe.to_dict(), "epoch": 1, "metrics": {"top1": 50.0}}
    if classes:
        state |= {"classes": CLASSES, "num_classes": len(CLASSES)}
    files.save_torch(state, run / "best.pt")
    files.write_text(json.dumps(metrics or {"recipe": recipe.name, "dataset": recipe.eval.dataset,
                                            "source": recipe.source.uri, "student": {"top1": 61.5, "top5": 99.0},
                                            "teacher": {"top1": 80.0, "top5": 100.0}, "steps": 10}),
                     run / "metrics.json")
    (run / "recipe.toml").write_text(recipe.to_toml())
    return run


def example(modality: str, batch: int = 2):
    """A batch of valid inputs ``(batch, *view)`` for the tiny students of :data:`TINY_STUDENTS`."""
    import torch

    g = torch.Generator().manual_seed(1)
    shapes = {"image": (3, 16, 16), "video": (3, 4, 16, 16), "audio": (1, 4000)}
    x = torch.rand(batch, *shapes[modality], generator=g)
    return x * 2 - 1 if modality == "audio" else x


def cli_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """``aip ARGS`` in this process (so a monkeypatch reaches it): its exit code and stderr."""
    import sys

    from aip import cli

    monkeypatch.setattr(sys, "argv", ["aip", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err
