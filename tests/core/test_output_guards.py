"""The guards of the commands that write beside a user's files: `aip eval` (metrics.json and confusion.png beside
the checkpoint), `aip preview` and `aip visualize` (their output folders, whose files aip lists in
``.aip-outputs.json``) replace what aip wrote there and refuse, with one line and nothing written, a same-named
file it did not write; and a source image that does not decode is reported before a teacher is trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from aip import files
from aip import recipe as R
from aip.errors import AipError
from aip.registry import load_modality
from aip.run import evaluate_checkpoint, preview, run
from aip.rundir import OUTPUTS_MANIFEST
from aip.student import load_student
from aip.visualize import visualize
from tests.conftest import CLASSES, fake_run, one_line

CPU = torch.device("cpu")
PNG = b"\x89PNG\r\n\x1a\nmine, not aip's"  # a user's file of the same name (a PNG signature, then anything)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests.conftest


def student_checkpoint(recipe: R.Recipe, folder: Path) -> Path:
    """``folder/best.pt``: a freshly initialised student of ``recipe`` (4 classes, the stripes set), as a run saves
    it, and nothing else in the folder."""
    torch.manual_seed(0)
    net = load_modality("image").model(recipe.student, recipe=recipe, num_classes=4, pretrained=False)
    files.save_torch({"student": net.state_dict(), "recipe": recipe.to_dict()}, folder / "best.pt")
    return folder / "best.pt"


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def only_listed(out: Path, *names: str) -> None:
    """``out`` holds ``names`` (with any figure's PDF), each listed as aip's in its manifest, and nothing else."""
    listed = json.loads((out / OUTPUTS_MANIFEST).read_text())
    assert set(names) <= set(listed) <= {*names, *(Path(n).with_suffix(".pdf").name for n in names)}, listed
    assert sorted(p.name for p in out.iterdir()) == sorted([OUTPUTS_MANIFEST, *listed])


# ------------------------------------------------------------------------------------------------- aip eval
@pytest.mark.parametrize("mine", [b"my notes on this run", b'{"accuracy": 93.1}', b"[1, 2]"])
def test_eval_refuses_a_metrics_json_aip_did_not_write(tiny_recipe, tmp_path, mine):
    recipe = R.load(tiny_recipe)
    ck = student_checkpoint(recipe, tmp_path / "run")
    (tmp_path / "run" / "metrics.json").write_bytes(mine)
    before = contents(tmp_path / "run")
    with pytest.raises(AipError) as e:
        evaluate_checkpoint(recipe, ck, device=CPU)
    one_line(e, "metrics.json", "was not written by aip", "move it away")
    assert contents(tmp_path / "run") == before  # nothing replaced, no confusion.png added


@pytest.mark.parametrize("figure", ["confusion.png", "confusion.pdf"])
def test_eval_refuses_a_confusion_figure_beside_no_metrics_of_aips(tiny_recipe, tmp_path, figure):
    recipe = R.load(tiny_recipe)
    ck = student_checkpoint(recipe, tmp_path / "run")
    (tmp_path / "run" / figure).write_bytes(PNG)
    before = contents(tmp_path / "run")
    with pytest.raises(AipError) as e:
        evaluate_checkpoint(recipe, ck, device=CPU)
    one_line(e, figure, "would replace it")
    assert contents(tmp_path / "run") == before


def test_eval_replaces_its_own_files_and_keeps_the_runs_metrics(tiny_recipe, tmp_path):
    recipe = R.load(tiny_recipe)
    folder = tmp_path / "run"
    ck = student_checkpoint(recipe, folder)
    (folder / "metrics.json").write_text(json.dumps({"recipe": "tiny", "steps": 3, "per_class": {"old": 1}}))
    (folder / "confusion.png").write_bytes(b"an older confusion matrix")  # aip's, beside aip's metrics.json
    acc = evaluate_checkpoint(recipe, ck, device=CPU)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["recipe"] == "tiny" and metrics["steps"] == 3  # the run's keys are kept
    assert set(metrics["per_class"]) == {"cool_h", "cool_v", "warm_h", "warm_v"}  # eval's are replaced
    assert sum(c["n"] for c in metrics["per_class"].values()) == acc["n"]
    assert (folder / "confusion.png").read_bytes()[:8] == PNG[:8]  # drawn again
    assert {p.name for p in folder.iterdir()} - {"confusion.pdf"} == {"best.pt", "confusion.png", "metrics.json"}


# ---------------------------------------------------------------------------------------------- aip preview
def test_preview_refuses_a_users_file_and_writes_nothing(tiny_recipe, tmp_path):
    recipe = R.load(tiny_recipe)
    out = tmp_path / "preview"
    out.mkdir()
    (out / "augmented.png").write_bytes(PNG)  # the second of the two files preview writes
    with pytest.raises(AipError) as e:
        preview(recipe, out=out, count=2, device=CPU)
    one_line(e, "augmented.png", "aip did not write it", "--out")
    assert contents(out) == {"augmented.png": PNG}  # views.png not written either, no manifest, no staging left


def test_preview_replaces_its_own_files_but_not_a_link_in_their_place(tiny_recipe, tmp_path):
    recipe = R.load(tiny_recipe)
    out = tmp_path / "preview"
    written = preview(recipe, out=out, count=2, device=CPU)
    assert [p.name for p in written] == ["views.png", "augmented.png"]
    only_listed(out, "views.png", "augmented.png")
    (out / "views.png").write_bytes(b"an older preview")
    preview(recipe, out=out, count=2, device=CPU)  # aip's own file: replaced
    assert (out / "views.png").read_bytes()[:8] == PNG[:8]
    only_listed(out, "views.png", "augmented.png")
    target = tmp_path / "photo.png"
    target.write_bytes(PNG)
    (out / "views.png").unlink()
    (out / "views.png").symlink_to(target)  # listed as aip's, but now a link to a user's file
    with pytest.raises(AipError) as e:
        preview(recipe, out=out, count=2, device=CPU)
    one_line(e, "views.png", "aip did not write it")
    assert target.read_bytes() == PNG and (out / "views.png").is_symlink()


# -------------------------------------------------------------------------------------------- aip visualize
def visualize_into(tmp_path: Path, out: Path) -> list[Path]:
    """Two optimisation steps of one class of a tiny image student (a fake run in ``tmp_path/image``)."""
    run_dir = tmp_path / "image"
    student = load_student(run_dir if run_dir.is_dir() else fake_run(tmp_path, "image"))
    return visualize({"student": student.net}, student.modality, student.recipe, classes=CLASSES, names=["alpha"],
                     out=out, steps=2)


def test_visualize_refuses_a_users_file_and_writes_nothing(tmp_path):
    out = tmp_path / "vis"
    out.mkdir()
    (out / "visualize.json").write_text('{"mine": true}')
    with pytest.raises(AipError) as e:
        visualize_into(tmp_path, out)
    one_line(e, "visualize.json", "aip did not write it")
    assert contents(out) == {"visualize.json": b'{"mine": true}'}  # classes.png not written either


def test_visualize_replaces_its_own_files(tmp_path):
    out = tmp_path / "vis"
    assert [p.name for p in visualize_into(tmp_path, out)] == ["classes.pdf", "classes.png", "visualize.json"]
    (out / "visualize.json").write_text("an older visualisation")
    visualize_into(tmp_path, out)
    assert json.loads((out / "visualize.json").read_text())["steps"] == 2
    only_listed(out, "classes.pdf", "classes.png", "visualize.json")


# ----------------------------------------------------------------------------- a source that does not decode
def test_an_undecodable_source_is_reported_before_the_teacher_trains(tiny_recipe, tmp_path, isolated_cache,
                                                                   monkeypatch):
    import aip.teacher

    steps = []
    real_step = aip.teacher.train_step

    def counted(**kwargs):
        steps.append(1)
        return real_step(**kwargs)

    monkeypatch.setattr(aip.teacher, "train_step", counted)
    text = tmp_path / "text.png"
    text.write_text("not an image, whatever its name says\n")
    recipe = R.load(tiny_recipe, [f"source.uri='{text.as_posix()}'"])  # it exists: the recipe itself is valid
    assert recipe.teacher.kind == "train"
    out = tmp_path / "run"
    with pytest.raises(AipError) as e:
        run(recipe, out=out, device=CPU)
    one_line(e, "text.png", "cannot read source image")
    assert steps == []  # not one teacher step was taken
    assert not list(isolated_cache.rglob("*.safetensors"))  # and no teacher cached
    assert not out.exists()  # the run folder is removed again
