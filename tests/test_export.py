"""aip export: a self-contained folder whose traced models match the PyTorch student, one per modality."""

import json

import numpy as np
import pytest
import torch

from aip.errors import AipError
from aip.export import export
from aip.student import load_student
from tests.conftest import run_cli
from tests.students import CLASSES, example, fake_run
from tests.test_cli import assert_one_line_error

MODALITIES = ["image", "video", "audio"]


@pytest.mark.parametrize("modality", MODALITIES)
def test_onnx_and_torchscript_match_pytorch(tmp_path, modality):
    ort = pytest.importorskip("onnxruntime")
    run = fake_run(tmp_path, modality)
    student = load_student(run)
    x = example(modality, batch=3)  # exported with a batch of 2: the batch dimension is dynamic
    with torch.no_grad():
        ref = student(x)
    onnx_dir = export(run, fmt="onnx", out=tmp_path / "onnx")
    session = ort.InferenceSession(str(onnx_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    y = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-5)
    ts_dir = export(run, fmt="torchscript", out=tmp_path / "ts")
    np.testing.assert_allclose(torch.jit.load(str(ts_dir / "model.ts"))(x).detach().numpy(), ref.numpy(),
                               rtol=1e-5, atol=1e-6)
    assert ref.std() > 0  # a constant output would match anything


def test_export_folder_is_self_contained(tmp_path):
    run = fake_run(tmp_path, "image")
    folder = export(run, fmt="exported-program", out=tmp_path / "out", command="aip export RUN")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.pt2", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["modality"] == "image" and config["arch"] == "cnn" and config["kwargs"] == {"width": 4}
    assert config["classes"] == CLASSES and config["input"]["shape"] == [3, 16, 16]
    assert config["recipe"]["name"] == "tiny-image" and config["metrics"]["student"]["top1"] == 61.5
    card = (folder / "README.md").read_text()
    assert "61.50 %" in card and "skimage:astronaut" in card and "`aip export RUN`" in card and "tiny-image" in card
    x = example("image")
    program = torch.export.load(str(folder / "model.pt2")).module()
    student = load_student(run)
    torch.testing.assert_close(program(x), student(x))
    # the folder alone rebuilds the student: the run directory is gone
    for f in run.iterdir():
        f.unlink()
    torch.testing.assert_close(load_student(folder)(x), student(x))


class DataDependent(torch.nn.Module):
    """A model whose control flow depends on its input's values: torch.export cannot capture it."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        y = self.net(x)
        return y if x.sum() > 0 else -y


def test_a_format_that_cannot_take_the_model_says_so(tmp_path, monkeypatch):
    run = fake_run(tmp_path, "image")
    student = load_student(run)
    student.net = DataDependent(student.net)
    monkeypatch.setattr("aip.export.load_student", lambda path: student)
    with pytest.raises(AipError, match="cannot be exported as exported-program .*--format safetensors"):
        export(run, fmt="exported-program", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_cli_export_and_errors(tmp_path):
    run = fake_run(tmp_path, "audio")
    r = run_cli("export", str(run), "--format", "torchscript")
    assert r.returncode == 0, r.stderr
    assert (run / "export" / "model.ts").is_file() and (run / "export" / "model.safetensors").is_file()
    assert_one_line_error(run_cli("export", str(run), "--format", "tflite"), "tflite", "onnx")
    with pytest.raises(AipError, match="is not a folder"):
        export(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AipError, match="no best.pt"):
        export(tmp_path / "empty")
    # an existing --out is replaced only when it is empty or an earlier export: a user's folder is never deleted
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert_one_line_error(run_cli("export", str(run), "--out", str(mine)), "not an aip export", "new folder")
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert_one_line_error(run_cli("export", str(run), "--out", str(mine / "thesis.tex")), "is a file")
    assert export(run, out=tmp_path / "empty") == tmp_path / "empty"  # empty: filled
    export(run, out=tmp_path / "empty")  # an earlier export: replaced
    assert (tmp_path / "empty" / "model.safetensors").is_file()
