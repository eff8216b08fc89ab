"""aip.load_student and aip predict: a student from a run or export folder, classifying raw files and arrays."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aip
from aip.errors import AipError
from tests.conftest import CLASSES, assert_one_line_error, example, fake_run, run_cli


def test_load_student_from_a_run_needs_no_dataset_or_recipe(tmp_path):
    run = fake_run(tmp_path, "image")
    (run / "recipe.toml").unlink()  # the checkpoint carries the recipe; the dataset folder never existed
    student = aip.load_student(run)
    assert not student.training and student.classes == CLASSES
    assert student(example("image")).shape == (2, 3)


def test_class_names_fall_back_to_metrics_then_indices(tmp_path):
    old = fake_run(tmp_path / "a", "image", classes=False)
    assert aip.load_student(old).classes == ["class_0", "class_1", "class_2"]
    named = fake_run(tmp_path / "b", "image", classes=False, metrics={"classes": ["x", "y", "z"]})
    assert aip.load_student(named).classes == ["x", "y", "z"]


def test_compiled_students_weights_load(tmp_path):
    run = fake_run(tmp_path, "image")
    state = torch.load(run / "best.pt", weights_only=True)
    state["student"] = {f"_orig_mod.{k}": v for k, v in state["student"].items()}  # as torch.compile names them
    torch.save(state, run / "best.pt")
    assert aip.load_student(run).classes == CLASSES


def test_predict_image_file_and_array_agree(tmp_path):
    student = aip.load_student(fake_run(tmp_path, "image"))
    pixels = np.random.default_rng(0).integers(0, 256, (18, 18, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    from_file = student.predict(str(tmp_path / "x.png"), top_k=3)
    from_array = student.predict(pixels, top_k=3)
    assert sorted(from_file.labels) == sorted(CLASSES) and from_file.labels == from_array.labels
    assert from_file.probs == pytest.approx(from_array.probs)
    assert sum(from_file.probs) == pytest.approx(1.0) and from_file.probs == sorted(from_file.probs, reverse=True)
    # the same numbers as the model on the test split's preprocessing: short side to 16 / 0.875 = 18 (as it
    # is), centre crop 16
    x = torch.from_numpy(pixels[1:17, 1:17]).permute(2, 0, 1).float()[None] / 255
    expected = student(x).softmax(-1)[0].max().item()
    assert from_file.probs[0] == pytest.approx(expected, rel=1e-5)


def test_predict_long_audio_averages_its_windows(tmp_path):
    student = aip.load_student(fake_run(tmp_path, "audio"))
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, 10_000).astype(np.float32)  # 2.5 windows of 4000
    views = student.views(wave)
    assert views.shape == (3, 1, 4000) and torch.equal(views[2, 0, 2000:], torch.zeros(2000))
    p = student.predict(wave, top_k=1)
    assert p.probs[0] == pytest.approx(student(views).softmax(-1).mean(0).max().item(), rel=1e-5)
    assert student.views(wave[:1000]).shape == (1, 1, 4000)  # a short clip: padded around its centre


def test_predict_video_clip_array(tmp_path):
    student = aip.load_student(fake_run(tmp_path, "video"))
    clip = torch.rand(3, 4, 24, 32)
    assert student.views(clip).shape == (1, 3, 4, 16, 16)
    assert len(student.predict([clip, clip])) == 2
    with pytest.raises(AipError, match="clip array must be"):
        student.predict(torch.rand(3, 5, 16, 16))


def test_cli_predict_table_json_and_errors(tmp_path):
    run = fake_run(tmp_path, "image")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "a.png")
    r = run_cli("predict", str(run), str(tmp_path / "a.png"), "--json", "--top-k", "2")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out[0]["input"].endswith("a.png") and len(out[0]["top"]) == 2
    assert {t["label"] for t in out[0]["top"]} <= set(CLASSES)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert_one_line_error(run_cli("predict", str(run), str(tmp_path / "bad.png")), "cannot read image",
                          code=1)


def test_cli_predict_a_folder(tmp_path):
    """A folder stands for its files in name order; hidden files are left out, unreadable ones skipped with one
    counted warning; an empty or wholly unreadable folder is a one-line error."""
    run = fake_run(tmp_path, "image")
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for name in ("b.png", "a.jpg", "sub/c.png"):
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(photos / name)
    (photos / "notes.txt").write_text("not an image")
    (photos / "._a.jpg").write_bytes(b"AppleDouble")
    r = run_cli("predict", str(run), str(photos), "--json")
    assert r.returncode == 0, r.stderr
    assert [Path(o["input"]).name for o in json.loads(r.stdout)] == ["a.jpg", "b.png"]
    assert r.stderr.count("warning") == 1 and "skipped 1 of 3 files" in r.stderr and "notes.txt" in r.stderr
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_cli("predict", str(run), str(tmp_path / "empty")), "holds no files to classify")
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "x.txt").write_text("no")
    assert_one_line_error(run_cli("predict", str(run), str(tmp_path / "texts")), "none of the 1 files could be read",
                          code=1)


def test_predict_video_and_audio_files(tmp_path):
    import soundfile as sf

    from modalities.video.motion import write_video

    video = aip.load_student(fake_run(tmp_path, "video"))
    frames = np.random.default_rng(0).integers(0, 256, (40, 24, 32, 3), dtype=np.uint8)
    path = write_video(tmp_path / "clip.mp4", frames, fps=30)
    assert video.views(str(path)).shape == (1, 3, 4, 16, 16)
    assert sorted(video.predict(str(path), top_k=3).labels) == sorted(CLASSES)
    with pytest.raises(AipError, match="does not exist"):
        video.predict(str(tmp_path / "none.mp4"))

    audio = aip.load_student(fake_run(tmp_path, "audio"))
    sf.write(tmp_path / "x.wav", np.random.default_rng(0).uniform(-0.3, 0.3, 4000).astype(np.float32), 8000)
    views = audio.views(str(tmp_path / "x.wav"))  # 0.5 s at 8 kHz -> 16 kHz: two 0.25 s windows
    assert views.shape == (2, 1, 4000)
    assert len(audio.predict(str(tmp_path / "x.wav")).labels) == 3
