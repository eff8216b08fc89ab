"""aip export: a self-contained folder whose traced models match the PyTorch student, one per modality."""

import json

import numpy as np
import pytest
import torch

from aip.errors import AipError
from aip.export import export
from aip.student import load_student
from tests.conftest import CLASSES, ROOT, assert_one_line_error, example, fake_run, run_cli

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
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "README.md", "config.json", "model.pt2", "model.safetensors"]
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


def test_config_has_the_fields_timm_and_hugging_face_read(tmp_path):
    from timm.data import resolve_data_config

    folder = export(fake_run(tmp_path, "image"), out=tmp_path / "out")
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "cnn" and config["num_classes"] == 3 and config["label_names"] == CLASSES
    assert config["model_type"] == "aip" and config["architectures"] == ["cnn"]
    assert config["id2label"] == {"0": "alpha", "1": "beta", "2": "gamma"} and config["label2id"]["gamma"] == 2
    # timm's own resolver reads the pretrained_cfg; the model normalises inside, so the pipeline does not
    data = resolve_data_config(pretrained_cfg=config["pretrained_cfg"])
    assert tuple(data["input_size"]) == (3, 16, 16) and data["interpolation"] == "bilinear"
    assert data["crop_pct"] == 0.875 and list(data["mean"]) == [0.0] * 3 and list(data["std"]) == [1.0] * 3
    assert config["modality"] == "image" and config["recipe"]["name"] == "tiny-image"  # aip's own fields stay
    audio = json.loads((export(fake_run(tmp_path, "audio"), out=tmp_path / "a") / "config.json").read_text())
    assert "pretrained_cfg" not in audio and audio["id2label"]["1"] == "beta"  # timm has no audio config


@pytest.mark.parametrize("modality,task", [("image", "image-classification"), ("audio", "audio-classification"),
                                           ("video", "video-classification")])
def test_model_card_metadata_parses(tmp_path, modality, task):
    from huggingface_hub import ModelCard

    folder = export(fake_run(tmp_path, modality), out=tmp_path / "out")
    card = ModelCard.load(folder / "README.md")
    data = card.data
    assert data.license == "mit" and data.library_name == "aip" and data.pipeline_tag == task
    assert data.datasets == [f"{modality}folder"] and data.metrics == ["accuracy"]
    result = data.eval_results[0]
    assert result.metric_type == "accuracy" and result.metric_value == 61.5 and result.task_type == task
    assert result.dataset_split == "test"
    text = card.text
    for part in ("## How it was made", "`skimage:astronaut`" if modality != "audio" else "`synthetic:noise`",
                 "trained by `aip teacher` with cross-entropy on the labelled training split", "## Input",
                 "| teacher | 80.00 % |", "| student | 61.50 % |", "## Limitations"):
        assert part in text, part
    if modality != "audio":
        assert "interpolation: bilinear (antialiased)" in text


def test_the_card_says_what_a_grey_dataset_looks_like(tmp_path):
    """Fashion-MNIST: what the teacher learnt from (60k labelled images) and the polarity a user must match."""
    from aip.card import model_card
    from aip.recipe import load
    from aip.registry import load_modality

    recipe = load(ROOT / "recipes" / "fashion-mnist.toml")
    spec = load_modality("image").input_spec(recipe)
    config = {"recipe": recipe.to_dict(), "metrics": {"dataset": "fashion-mnist", "student": {"top1": 79.86}},
              "input": spec, "modality": "image", "arch": "cnn", "kwargs": {}, "classes": ["a", "b"],
              "files": ["model.safetensors"], "aip_version": "0"}
    card = model_card(config, command="aip export fashion-mnist")
    assert "60k train" in card and "training split of fashion-mnist" in card
    assert "light objects on a dark background" in card and "invert a dark object on a white background" in card
    assert "colour: grayscale" in card and "`(batch, 1, 28, 28)`" in card and "float32 in [0, 1]" in card
    assert "Pixel polarity matters" in card


def test_no_machine_path_in_the_card_and_files_are_not_private(tmp_path):
    import os

    run = fake_run(tmp_path, "image")
    old = os.umask(0o022)
    try:
        r = run_cli("export", str(run.resolve()), "--out", str(tmp_path / "out"))
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    card = (tmp_path / "out" / "README.md").read_text()
    assert str(tmp_path) not in card and "Made by `aip export image`" in card  # the run's name, not its path
    for f in (tmp_path / "out").iterdir():
        assert f.stat().st_mode & 0o777 == 0o644, f.name


def test_onnx_export_fails_when_onnxruntime_disagrees_with_pytorch(tmp_path, monkeypatch):
    from aip.export import ONNX_ATOL

    ort = pytest.importorskip("onnxruntime")
    run = fake_run(tmp_path, "image")
    real = ort.InferenceSession.run

    def off(self, *args, **kwargs):
        return [y + 20 * ONNX_ATOL for y in real(self, *args, **kwargs)]

    monkeypatch.setattr(ort.InferenceSession, "run", off)
    with pytest.raises(AipError, match=r"differ from PyTorch's by up to 0.002 on 3 sample inputs \(tolerance atol"):
        export(run, fmt="onnx", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written
    monkeypatch.setattr(ort.InferenceSession, "run", real)
    assert (export(run, fmt="onnx", out=tmp_path / "out") / "model.onnx").is_file()


def test_export_again_replaces_only_its_own_files(tmp_path):
    """Exporting again into an export folder deleted every file a user had added (the folder was replaced whole).
    Now the export's manifest (.aip-outputs.json) names what aip wrote: only those are replaced, a model file of an
    earlier format is removed, and a user's files stay, byte for byte."""
    run = fake_run(tmp_path, "image")
    out = export(run, fmt="torchscript", out=tmp_path / "e")
    (out / "labels.txt").write_text("my labels")
    (out / "notes").mkdir()
    (out / "notes" / "n.md").write_text("mine")
    first = (out / "model.safetensors").stat().st_ino
    export(run, out=out)  # safetensors only: the earlier model.ts is aip's and stale
    assert sorted(p.name for p in out.iterdir()) == [".aip-outputs.json", "README.md", "config.json", "labels.txt",
                                                     "model.safetensors", "notes"]
    assert (out / "labels.txt").read_text() == "my labels" and (out / "notes" / "n.md").read_text() == "mine"
    assert (out / "model.safetensors").stat().st_ino != first  # written again (atomically, a new file)
    assert json.loads((out / ".aip-outputs.json").read_text()) == ["README.md", "config.json", "model.safetensors"]
    # a same-named file aip did not write is refused before any work, and kept
    (out / "model.ts").write_text("the user's own model")
    with pytest.raises(AipError) as e:
        export(run, fmt="torchscript", out=out)
    assert "\n" not in str(e.value) and "model.ts is already there and aip did not write it" in str(e.value)
    assert (out / "model.ts").read_text() == "the user's own model"


def test_an_export_of_an_older_aip_without_a_manifest_is_written_again(tmp_path):
    """Exports written before the manifest: config.json, the weights and a model card aip wrote count as aip's;
    a README.md of the user's own does not."""
    run = fake_run(tmp_path, "image")
    out = export(run, out=tmp_path / "old")
    (out / ".aip-outputs.json").unlink()
    (out / "labels.txt").write_text("mine")
    export(run, out=out)
    assert (out / "labels.txt").read_text() == "mine" and (out / ".aip-outputs.json").is_file()
    (out / ".aip-outputs.json").unlink()
    (out / "README.md").write_text("# my own notes")
    with pytest.raises(AipError, match="README.md is already there and aip did not write it"):
        export(run, out=out)
    assert (out / "README.md").read_text() == "# my own notes"


def test_export_out_a_link_a_file_or_under_a_file_is_one_line(tmp_path):
    """`aip export --out LINK` and `--out afile/sub` gave tracebacks."""
    import os

    run = fake_run(tmp_path, "image")
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    (tmp_path / "afile").write_text("mine")
    for out, fragment in ((tmp_path / "link", "is a symbolic link"), (tmp_path / "afile", "is a file"),
                          (tmp_path / "afile" / "sub", "afile is a file, not a folder"),
                          (run, "is the folder being exported")):
        with pytest.raises(AipError) as e:
            export(run, out=out)
        assert "\n" not in str(e.value) and fragment in str(e.value), e.value
    assert not any((tmp_path / "real").iterdir()) and (tmp_path / "afile").read_text() == "mine"
    assert_one_line_error(run_cli("export", str(run), "--out", str(tmp_path / "afile" / "sub")), "is a file")
