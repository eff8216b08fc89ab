"""Checkpoints and exports are verified before use: the zip CRC, the keys and shapes a resume reads, finite weights,
a usable best.pt after a resume, bounded values in an export's config.json, and a damaged cache of the teacher's
accuracy. Each case is one line, and the files are left as they were."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from aip import checkpoint
from aip import recipe as R
from aip.cache import cache_dir
from aip.errors import AipError
from aip.export import export
from aip.run import evaluate_checkpoint, run
from aip.student import load_student
from tests.conftest import TINY_RECIPE, one_line

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, stripes_root) -> Path:
    """A tiny run of two epochs stopped after the first (teacher cached beside it), made once for the module."""
    base = tmp_path_factory.mktemp("stopped")
    (base / "tiny.toml").write_text(TINY_RECIPE.format(root=stripes_root.as_posix(), epochs=2))
    old = os.environ.get("AIP_CACHE")
    os.environ["AIP_CACHE"] = str(base / "cache")
    try:
        run(R.load(base / "tiny.toml"), out=base / "run", device=CPU, stop_after_epochs=1)
    finally:
        if old is None:
            del os.environ["AIP_CACHE"]
        else:
            os.environ["AIP_CACHE"] = old
    return base


@pytest.fixture
def stopped(stopped_run, tmp_path, isolated_cache) -> tuple[R.Recipe, Path]:
    """This test's copy of the stopped run, with the cached teacher in its own cache."""
    shutil.copytree(stopped_run / "cache", isolated_cache, dirs_exist_ok=True)
    shutil.copytree(stopped_run / "run", tmp_path / "run")
    return R.load(stopped_run / "tiny.toml"), tmp_path / "run"


def edit(path: Path, change) -> bytes:
    saved = torch.load(path, weights_only=True)
    change(saved)
    torch.save(saved, path)
    return path.read_bytes()


def flip_bytes_in_a_tensor(path: Path, count: int = 16) -> None:
    """XOR ``count`` bytes inside the largest tensor record of a torch zip file (its CRC is then wrong)."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    for i in range(count):
        data[start + i] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda c: c.pop("student"), "no student weights"),
    (lambda c: c["student"].pop(next(iter(c["student"]))), "does not fit the recipe's student (missing"),
    (lambda c: c["student"].update({k: torch.zeros(3) for k in list(c["student"])[-1:]}), "is (3,)"),
    (lambda c: c.update(rng_per_rank=[]), "random-number state"),
    (lambda c: c.update(rng_per_rank=[{"torch": torch.zeros(0, dtype=torch.uint8)}]), "random-number state"),
    (lambda c: c.pop("optimizer"), "no optimizer state"),
    (lambda c: c["state"].update(step=-3), "step count"),
    (lambda c: c["optimizer"].update(state={}, param_groups=[]), "cannot be resumed"),
])
def test_a_last_pt_with_the_right_fingerprint_but_wrong_contents_is_one_line(stopped, change, fragment):
    recipe, out = stopped
    before = edit(out / "last.pt", change)
    with pytest.raises(AipError) as e:
        run(recipe, out=out, device=CPU)
    one_line(e, "last.pt", fragment, "delete")
    assert (out / "last.pt").read_bytes() == before


def test_flipped_bytes_in_a_checkpoint_fail_its_crc(stopped):
    """torch.load does not check the zip CRC: without the check the damaged weights load without a word."""
    recipe, out = stopped
    flip_bytes_in_a_tensor(out / "last.pt")
    torch.load(out / "last.pt", weights_only=True)  # what aip relied on before: no complaint
    with pytest.raises(AipError) as e:
        checkpoint.load(out / "last.pt")
    one_line(e, "corrupt", "CRC")
    with pytest.raises(AipError) as e:
        evaluate_checkpoint(recipe, out / "last.pt", device=CPU)
    one_line(e, "CRC")
    with pytest.raises(AipError) as e:
        run(recipe, out=out, device=CPU)
    one_line(e, "CRC")


def test_an_empty_best_pt_is_rewritten_by_the_resumed_run(stopped, capsys):
    recipe, out = stopped
    (out / "best.pt").write_bytes(b"")
    run(recipe, out=out, device=CPU)
    assert "best.pt cannot be used" in capsys.readouterr().err
    assert checkpoint.usable_best(out / "best.pt", load_student(out).net) is None
    assert (out / "best.pt").stat().st_size > 0
    export(out, out=out.parent / "e")  # what failed later before


def test_a_damaged_best_pt_of_a_finished_run_is_refused_not_kept(stopped):
    recipe, out = stopped
    run(recipe, out=out, device=CPU)  # finished
    edit(out / "best.pt", lambda c: c["student"].update({k: v * float("nan") for k, v in c["student"].items()}))
    with pytest.raises(AipError) as e:
        run(recipe, out=out, device=CPU)
    one_line(e, "best.pt", "NaN", "run is finished", "delete")


def test_nan_or_inf_weights_are_refused_by_eval_predict_and_export(stopped):
    recipe, out = stopped
    def poison(c):
        w = c["student"][next(k for k in c["student"] if k.endswith("weight"))]
        w[(0,) * w.ndim] = float("inf")

    edit(out / "best.pt", poison)
    for act in (lambda: evaluate_checkpoint(recipe, out / "best.pt", device=CPU), lambda: load_student(out),
                lambda: export(out, out=out.parent / "e")):
        with pytest.raises(AipError) as e:
            act()
        one_line(e, "NaN or infinite")
    assert not (out.parent / "e").exists()


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda c: c.update(num_classes=10**9), "num_classes = 1000000000"),
    (lambda c: c.update(num_classes="many"), "num_classes = many"),
    (lambda c: c["recipe"]["student"]["kwargs"].update(width=10**8), "do not fit"),
    (lambda c: c["recipe"]["student"].update(kwargs={"bogus": 1}), "has no option 'bogus'"),
    (lambda c: c.update(recipe=[1, 2]), "not a table"),
    (lambda c: c["recipe"].update(train="fast"), "recipe in"),
    (lambda c: c.update(metrics=[1]), None),  # ignored: metrics are only shown
])
def test_crafted_config_values_of_an_export_are_bounded(stopped, tmp_path, change, fragment):
    _, out = stopped
    folder = export(out, out=tmp_path / "e")
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))
    if fragment is None:
        load_student(folder)
        return
    with pytest.raises(AipError) as e:
        load_student(folder)
    one_line(e, fragment)


@pytest.mark.parametrize("text", ["", "[" * 100_000, "[1, 2]", "nan"])
def test_a_config_json_that_is_not_an_object_is_one_line(stopped, tmp_path, text):
    _, out = stopped
    folder = export(out, out=tmp_path / "e")
    (folder / "config.json").write_text(text)
    with pytest.raises(AipError) as e:
        load_student(folder)
    one_line(e, "config.json")


@pytest.mark.parametrize("text", ["", "{not json", '{"top1": "x"}', "[1]", '{"top1": 1e999, "top5": 3}'])
def test_a_damaged_teacher_accuracy_cache_is_measured_again(stopped, text):
    recipe, out = stopped
    caches = list(cache_dir("teachers").glob("accuracy-*.json"))
    assert caches
    for c in caches:
        c.write_text(text)
    metrics = run(recipe, out=out, device=CPU)
    assert 0 <= metrics["teacher"]["top1"] <= 100
    assert all(json.loads(c.read_text())["top1"] == metrics["teacher"]["top1"] for c in caches)


def test_a_temporary_file_left_by_a_kill_during_a_write_is_removed_on_resume(stopped):
    recipe, out = stopped
    (out / ".last.pt.x1y2z3w4.tmp").write_bytes(b"half a checkpoint")
    (out / ".my-notes.tmp").write_text("mine")
    run(recipe, out=out, device=CPU)
    assert not (out / ".last.pt.x1y2z3w4.tmp").exists()
    assert (out / ".my-notes.tmp").read_text() == "mine"
