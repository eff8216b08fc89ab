"""aip predict's batching and its output formats; dir(aip); aip.distil(progress=False)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
from PIL import Image

import aip
from aip import progress
from aip.api import _no_progress_bars
from aip.predict import predict_files, render
from tests.conftest import CLASSES, fake_run


def _images(folder, n):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (18, 18, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def test_predict_runs_one_forward_per_batch_of_files(tmp_path):
    student = aip.load_student(fake_run(tmp_path / "run", "image"))
    folder = _images(tmp_path / "imgs", 5)
    sizes = []
    hook = student.net.register_forward_hook(lambda m, args, out: sizes.append(args[0].shape[0]))
    results, skipped, listed = predict_files(student, [str(folder)], top_k=2, batch_size=2)
    hook.remove()
    assert listed == 5 and not skipped and len(results) == 5
    assert sizes == [2, 2, 1]  # three forwards for five files, not five
    one_by_one = [student.predict(str(folder / f"{i:02d}.png"), top_k=2) for i in range(5)]
    assert [r.labels for r in results] == [r.labels for r in one_by_one]


def test_predict_renders_a_table_json_and_csv(tmp_path):
    student = aip.load_student(fake_run(tmp_path / "run", "image"))
    folder = _images(tmp_path / "imgs", 2)
    results, _, _ = predict_files(student, [str(folder)], top_k=3)
    table = render(results).splitlines()
    assert table[0].split() == ["file", "top-1", "top-2", "top-3"] and set(table[1]) <= {"-", " "}
    assert len(table) == 4 and "00.png" in table[2] and "%" in table[2]
    data = json.loads(render(results, "json"))
    assert [len(d["top"]) for d in data] == [3, 3] and {t["label"] for t in data[0]["top"]} <= set(CLASSES)
    rows = list(csv.DictReader(io.StringIO(render(results, "csv"))))
    assert len(rows) == 6 and rows[0]["rank"] == "1"
    assert abs(sum(float(r["prob"]) for r in rows[:3]) - 1.0) < 1e-4


def test_dir_shows_the_public_api():
    names = dir(aip)
    for name in ("distil", "load_student", "push_to_hub"):
        assert name in names


def test_distil_without_progress_bars_switches_every_bar_off_for_the_call(monkeypatch):
    monkeypatch.delenv("AIP_PROGRESS", raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert progress.enabled()
    with _no_progress_bars():
        assert not progress.enabled()
        assert progress.tqdm(total=3).disable
    assert progress.enabled()


def test_a_fifo_or_a_broken_link_in_a_folder_is_skipped_with_what_it_is(tmp_path):
    """A folder's entries that are not regular files were left out in silence; now each is skipped with a line
    naming what it is (and a FIFO is never opened, so nothing blocks)."""
    import os

    student = aip.load_student(fake_run(tmp_path / "run", "image"))
    folder = _images(tmp_path / "imgs", 2)
    os.mkfifo(folder / "feed.png")
    os.symlink("nowhere.png", folder / "gone.png")
    results, skipped, listed = predict_files(student, [str(folder)], top_k=2, batch_size=2)
    assert listed == 4 and len(results) == 2
    assert sorted(s.split(": ", 1)[0].rsplit("/", 1)[-1] for s in skipped) == ["feed.png", "gone.png"]
    assert any("named pipe (FIFO)" in s for s in skipped) and any("broken symbolic link" in s for s in skipped)
