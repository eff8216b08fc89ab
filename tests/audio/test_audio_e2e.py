"""Audio end to end through the real CLI: a teacher trained on espeak-ng keywords (Speech Commands layout),
a student distilled from one prose recording that contains none of the words; previews; bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from modalities.audio.datasets import KEYWORDS
from tests.conftest import distil, run_cli, write_toml

ESPEAK = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                            reason="espeak-ng is not installed (apt-get install espeak-ng)")

def write_recipe(tmp_path: Path, *, uri: str, root: Path) -> Path:
    return write_toml(tmp_path / "tiny-audio.toml", {
        "modality": "audio", "name": "tiny-audio",
        "source": {"uri": uri},
        "augment": {"reverb_p": 0.1},
        **distil("cnn", fit={"epochs": 15, "batch_size": 32}, temperature=4.0,
                 train={"epochs": 2, "samples_per_epoch": 1536, "lr": 5e-3, "schedule": "onecycle", "view_pool": 3,
                        "log_every": 8}),
        "eval": {"dataset": "speechcommands", "root": root.as_posix(), "download": False},
    })


@ESPEAK
@pytest.mark.slow
def test_teacher_then_student_from_one_recording_runs_end_to_end(tmp_path: Path):
    """The whole pipeline through the CLI on a tiny espeak-ng set in the 12-class protocol: the teacher learns
    and the run writes its contract (the student's accuracy is checked by the test below, on 4 classes)."""
    from modalities.audio.keywords import build_keyword_set

    folder = build_keyword_set(tmp_path, n_voices=8, reps=2, words=KEYWORDS + ("cat", "dog", "bird"))
    recipe = write_recipe(tmp_path, uri="espeak:prose", root=folder)
    teacher = run_cli("teacher", str(recipe), "--device", "cpu")
    assert teacher.returncode == 0, teacher.stderr[-2000:]
    assert "12 classes" in teacher.stdout
    out = tmp_path / "run"
    result = run_cli("run", str(recipe), "--device", "cpu", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["chance"] == pytest.approx(100 / 12) and m["eval_items"] == 48
    assert m["teacher"]["top1"] >= 2 * m["chance"], m  # measured 20.8 % on this tiny set (5 training voices)
    assert m["finished"] and m["steps"] == 48 and 0 <= m["student"]["top1"] <= 100, m
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def student_recipe(tmp_path: Path, *, root: Path, teacher_epochs: int, epochs: int, samples_per_epoch: int) -> Path:
    """Keywords heard by the teacher, one prose recording by the student, through a finer log-mel front end."""
    return write_toml(tmp_path / "tiny-student.toml", {
        "modality": "audio", "name": "tiny-student",
        "source": {"uri": "espeak:prose"},
        "augment": {"isolate_p": 0.8, "reverb_p": 0.1, "cutmix_p": 0.3},
        **distil("cnn", kwargs={"n_mels": 40, "hop_ms": 16.0}, temperature=4.0,
                 fit={"epochs": teacher_epochs, "batch_size": 32, "label_smoothing": 0.1},
                 train={"epochs": epochs, "samples_per_epoch": samples_per_epoch, "optimizer": "adamw", "lr": 3e-3,
                        "weight_decay": 5e-4, "schedule": "onecycle", "view_pool": 3, "log_every": 20, "seed": 0}),
        "eval": {"dataset": "audiofolder", "root": root.as_posix()},
    })


#: four keywords whose vowels differ (the set's test voices are never heard in training)
STUDENT_WORDS = ("yes", "no", "up", "right")


def keyword_audiofolder(tmp_path: Path, *, words: tuple[str, ...], n_voices: int, reps: int) -> Path:
    """The espeak-ng keyword set for ``words`` as an ``audiofolder`` (train/WORD, test/WORD; the set's
    validation voices are left out), so every class is one keyword."""
    from modalities.audio.keywords import build_keyword_set

    sc = build_keyword_set(tmp_path / "sc", n_voices=n_voices, reps=reps, words=words)
    test = set((sc / "testing_list.txt").read_text().split())
    val = set((sc / "validation_list.txt").read_text().split())
    root = tmp_path / "keywords"
    for word in words:
        for clip in sorted((sc / word).glob("*.wav")):
            rel = f"{word}/{clip.name}"
            if rel not in val:
                dest = root / ("test" if rel in test else "train") / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(clip, dest)
    return root


@ESPEAK
@pytest.mark.slow
def test_student_from_one_prose_recording_beats_chance(tmp_path: Path):
    """The paper's claim in miniature, through the real CLI: a teacher trained on labelled keyword clips, then
    a student that only ever hears augmented windows of ONE espeak-ng prose recording (which contains none of
    the words) recognises the keywords spoken by voices neither network heard."""
    root = keyword_audiofolder(tmp_path, words=STUDENT_WORDS, n_voices=12, reps=3)
    recipe = student_recipe(tmp_path, root=root, teacher_epochs=25, epochs=3, samples_per_epoch=6400)
    teacher = run_cli("teacher", str(recipe), "--device", "cpu")
    assert teacher.returncode == 0, teacher.stderr[-2000:]
    out = tmp_path / "run"
    result = run_cli("run", str(recipe), "--device", "cpu", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["chance"] == pytest.approx(25.0) and m["eval_items"] == 36, m  # 3 test voices x 3 clips x 4 words
    assert m["finished"] and m["steps"] == 300, m
    # measured on 2 CPU cores (about 90 s for the test): teacher 94.4 %, student 61.1 % (30.6, 55.6, 61.1 % after
    # epochs 1-3); with train.seed = 1 instead: teacher 86.1 %, student 58.3 %. A student that learnt nothing
    # from the prose stays near chance (25 %).
    assert m["teacher"]["top1"] >= 70, m
    assert m["student"]["top1"] >= 2 * m["chance"], m


def test_preview_writes_log_mel_grids_and_wavs(tmp_path: Path):
    recipe = write_recipe(tmp_path, uri="synthetic:noise", root=tmp_path)
    out = tmp_path / "preview"
    result = run_cli("preview", str(recipe), "--out", str(out), "--count", "6")
    assert result.returncode == 0, result.stderr
    names = {p.name for p in out.iterdir()}
    assert {"views.png", "augmented.png", "views-0.wav", "augmented-3.wav"} <= names
    from PIL import Image

    with Image.open(out / "augmented.png") as im:
        assert im.size[0] > 200 and im.size[1] > 64  # a grid of 64-mel spectrograms
    info = sf.info(str(out / "views-0.wav"))
    assert info.samplerate == 16_000 and info.frames == 16_000


@pytest.mark.parametrize("case", ["missing", "corrupt", "short", "silent"])
def test_bad_source_is_one_line(tmp_path: Path, case: str):
    """A missing file is a usage error (exit 2); a file that is there but unusable fails at run time (exit 1)."""
    path = tmp_path / f"{case}.wav"
    if case == "corrupt":
        path.write_bytes(b"\x00\x01garbage" * 100)
    elif case == "short":
        sf.write(str(path), np.full(4000, 0.1, np.float32), 16_000)
    elif case == "silent":
        sf.write(str(path), np.zeros(40_000, np.float32), 16_000)
    recipe = write_recipe(tmp_path, uri=path.as_posix(), root=tmp_path)
    command = "run" if case == "missing" else "preview"  # a missing file fails when the recipe loads
    result = run_cli(command, str(recipe), "--out", str(tmp_path / "out"))
    assert result.returncode == (2 if case == "missing" else 1), result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr
    expected = {"missing": "does not exist", "corrupt": "not a readable audio file",
                "short": "shorter than one window", "silent": "is silent"}[case]
    assert expected in lines[0]


def test_unknown_dataset_and_model_fail_at_check(tmp_path: Path):
    recipe = write_recipe(tmp_path, uri="synthetic:noise", root=tmp_path)
    bad = run_cli("check", str(recipe), "--set", "eval.dataset=speech")
    assert bad.returncode == 2 and "unknown audio dataset 'speech'" in bad.stderr
    bad = run_cli("check", str(recipe), "--set", "student.arch=bcresnet5")
    assert bad.returncode == 2 and "known: bcresnet" in bad.stderr
