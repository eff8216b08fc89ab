"""aip visualize: activation maximisation raises the target logit far above its spread, files are written."""

import json

import pytest
import torch
from PIL import Image

from aip.errors import AipError
from aip.modality import Visualizer, Visuals
from aip.student import load_student
from aip.teacher import FrozenTeacher
from aip.visualize import maximise, visualize
from tests.conftest import CLASSES, fake_run, run_cli

pytestmark = pytest.mark.usefixtures("one_thread")  # tests.conftest


def logit_spread(student, count: int = 64) -> torch.Tensor:
    """Standard deviation of each class logit over random starts of the parametrisation."""
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        visuals = student.modality.visuals(student.recipe)
        x = visuals.input(visuals.params(count, generator=g))
        return student(x).std(0)


@pytest.mark.parametrize("modality", ["image", "video", "audio"])
def test_target_logit_rises_well_above_its_start(tmp_path, modality):
    student = load_student(fake_run(tmp_path, modality))
    visuals = student.modality.visuals(student.recipe)
    assert isinstance(student.modality, Visualizer) and isinstance(visuals, Visuals)
    result = maximise(student.net, visuals, [0, 1, 2], steps=40, seed=0)
    spread = logit_spread(student)
    rise = torch.tensor(result.end) - torch.tensor(result.start)
    assert (rise > 3 * spread).all(), (rise, spread)  # far beyond what a random start of the same kind scores
    again = maximise(student.net, student.modality.visuals(student.recipe), [0, 1, 2], steps=40, seed=0)
    assert torch.equal(again.inputs, result.inputs)  # fixed seed: the same pictures


def test_student_and_teacher_side_by_side(tmp_path):
    student = load_student(fake_run(tmp_path, "image"))
    other = load_student(fake_run(tmp_path / "t", "image")).net
    with torch.no_grad():  # another network: the same architecture, other weights
        for p in other.parameters():
            p.add_(0.1 * torch.randn_like(p))
    # wrapped as aip.teacher.load_teacher returns a teacher: frozen, its forward pass without gradients
    written = visualize({"student": student.net, "teacher": FrozenTeacher(other)}, student.modality,
                        student.recipe, classes=CLASSES, names=["gamma", "alpha"], out=tmp_path / "vis", steps=5)
    # every file written is returned: the picture, its PDF beside it and the logits
    assert [p.name for p in written] == ["classes.pdf", "classes.png", "visualize.json"]
    assert sorted(p.name for p in (tmp_path / "vis").iterdir() if not p.name.startswith(".")) == \
        [p.name for p in written]
    with Image.open(tmp_path / "vis" / "classes.png") as img:
        width, height = img.size
    assert width > 2 * 100 and height > 2 * 100  # two rows, two columns of pictures
    logits = json.loads((tmp_path / "vis" / "visualize.json").read_text())["logits"]
    assert list(logits) == ["student", "teacher"] and list(logits["teacher"]) == ["gamma", "alpha"]
    assert all(v["end"] > v["start"] for v in logits["teacher"].values())  # the teacher's input was optimised
    with pytest.raises(AipError, match="unknown class 'delta'"):
        visualize({"student": student.net}, student.modality, student.recipe, classes=CLASSES, names=["delta"],
                  out=tmp_path / "x", steps=1)


def test_audio_and_video_render_wav_and_gif(tmp_path):
    for modality, extra in (("audio", "student-beta.wav"), ("video", "classes.gif")):
        student = load_student(fake_run(tmp_path, modality))
        written = visualize({"student": student.net}, student.modality, student.recipe, classes=CLASSES,
                            names=["beta"], out=tmp_path / f"vis-{modality}", steps=2)
        assert extra in [p.name for p in written] and all(p.stat().st_size > 0 for p in written)


def test_cli_visualize(tmp_path):
    run = fake_run(tmp_path, "image")
    r = run_cli("visualize", str(run), "--classes", "beta", "--steps", "3")
    assert r.returncode == 0, r.stderr
    assert (run / "visualize" / "classes.png").is_file()


def test_modality_without_visualizer_is_named(tmp_path):
    student = load_student(fake_run(tmp_path, "image"))
    with pytest.raises(AipError, match="modality 'image' has no feature visualisation"):
        visualize({"student": student.net}, object(), student.recipe, classes=CLASSES, out=tmp_path / "x", steps=1)
