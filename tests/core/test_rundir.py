"""The run folder's one owner (aip.rundir.RunDir): --force protects every file a run writes, and no link
planted in the folder lets a run write outside it."""

from __future__ import annotations

import os

import pytest

from aip import rundir
from aip.errors import AipError
from aip.rundir import MARKER, RunDir


def test_run_dir_names_every_file_a_run_writes():
    names = set(RunDir.FILES)
    assert {"recipe.toml", "metrics.json", "metrics.jsonl", "steps.jsonl", "curves.png", "confusion.png",
            "last.pt", "best.pt", "tb"} <= names
    d = RunDir("r")
    assert d.steps.name == "steps.jsonl" and d.confusion.name == "confusion.png" and d.tb.name == "tb"


@pytest.mark.parametrize("name", RunDir.FILES)
def test_force_never_writes_over_a_planted_run_file(tmp_path, name):
    folder = tmp_path / "mine"
    folder.mkdir()
    planted = folder / name
    if name == "tb":
        planted.mkdir()
        (planted / "events.mine").write_text("mine")
    else:
        planted.write_text("mine")
    with pytest.raises(AipError) as e:
        with rundir.claimed(folder, fingerprint="f", force=True):
            pass
    assert "\n" not in str(e.value) and name in str(e.value)
    kept = planted / "events.mine" if name == "tb" else planted
    assert kept.read_text() == "mine"
    assert sorted(p.name for p in folder.iterdir()) == [name]  # no marker or anything else left behind


def test_a_symlinked_marker_is_refused_and_its_target_kept(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = tmp_path / "runs" / "a"
    folder.mkdir(parents=True)
    os.symlink(victim, folder / MARKER)
    with pytest.raises(AipError) as e:
        with rundir.claimed(folder, fingerprint="f"):
            pass
    assert "\n" not in str(e.value)
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("name", ["recipe.toml", "metrics.json", "last.pt"])
def test_a_symlinked_run_file_is_refused_before_any_work(tmp_path, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = tmp_path / "run"
    folder.mkdir()
    os.symlink(victim, folder / name)
    with pytest.raises(AipError) as e:
        with rundir.claimed(folder, fingerprint="f", force=True):
            pass
    assert "\n" not in str(e.value)
    assert victim.read_text() == "precious"
