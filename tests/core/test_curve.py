"""The views-to-accuracy curve (aip.curve) on hand-written run folders: views = step x effective batch, the views
for 90/95/98 % of the teacher (or 'not reached'), the mean over seeds, and the section `aip report` writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aip import curve


def write_run(folder: Path, rows: list[tuple[int, float]], *, teacher: float = 80.0, batch: int = 256) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"teacher": {"top1": teacher}, "student": {"top1": rows[-1][1]},
                                                     "effective_batch": batch, "finished": True}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"epoch": i + 1, "step": s, "top1": t}) + "\n"
                                                  for i, (s, t) in enumerate(rows)))
    return folder


def test_views_for_each_share_of_the_teacher(tmp_path: Path) -> None:
    # teacher 80 %: 90 % of it is 72, 95 % is 76, 98 % is 78.4
    run = write_run(tmp_path / "r", [(10, 50.0), (40, 72.0), (100, 75.9), (400, 76.0), (1000, 78.0)])
    c = curve.read_curve(run)
    assert c is not None and c.views == [2560, 10240, 25600, 102400, 256000]
    assert curve.views_to_share(c, 0.90) == 10240  # exactly 72.0 counts as reached
    assert curve.views_to_share(c, 0.95) == 102400  # 75.9 at step 100 is not 95 %
    assert curve.views_to_share(c, 0.98) is None
    md = curve.table([c])
    assert "10.2 k" in md and "102.4 k" in md and "not reached" in md and "97.5%" in md


def test_missing_or_teacherless_runs(tmp_path: Path) -> None:
    assert curve.read_curve(tmp_path) is None  # no metrics files
    run = write_run(tmp_path / "r", [(10, 50.0)], batch=0)
    assert curve.read_curve(run) is None  # views cannot be counted without the effective batch
    nt = curve.Curve(name="x", views=[1, 2], top1=[50.0, 60.0], teacher_top1=None)
    assert curve.views_to_share(nt, 0.9) is None and nt.ratio is None


def test_seeds_are_averaged_at_shared_steps_and_the_report_section(tmp_path: Path) -> None:
    a = write_run(tmp_path / "v_seed-0", [(10, 60.0), (20, 70.0), (40, 76.0)])
    b = write_run(tmp_path / "v_seed-1", [(10, 64.0), (40, 74.0)])
    runs = curve.runs_by_variant([type("Run", (), {"name": p.name, "path": p})() for p in (a, b)])
    assert runs == [("v", a), ("v", b)]
    (c,) = curve.variant_curves(runs)
    assert c.views == [2560, 10240] and c.top1 == pytest.approx([62.0, 75.0])
    lines = curve.report_section(runs, title="t", out=tmp_path, slug="t", command="aip report x")
    assert (tmp_path / "t-views.png").stat().st_size > 0
    text = "\n".join(lines)
    assert "views for 90%" in text and "| v | 80.00 % | 75.00 % (10.2 k) | 93.8% | 10.2 k | not reached |" in text
    single = write_run(tmp_path / "one", [(10, 60.0)])
    assert curve.report_section([("one", single)], title="t", out=tmp_path, slug="u", command="c") == []


def test_aip_report_writes_the_views_table(tmp_path: Path) -> None:
    from aip.report import report

    folder = tmp_path / "runs"
    write_run(folder / "a", [(10, 73.0), (40, 76.0)], teacher=80.0)
    write_run(folder / "b", [(10, 40.0), (40, 50.0)], teacher=80.0)
    (folder / "a" / "recipe.toml").write_text("[train]\nseed = 0\n")
    (folder / "b" / "recipe.toml").write_text("[train]\nseed = 0\n")
    md = report([folder], out=tmp_path / "out").read_text()
    assert "runs-views.png" in md and "| a | 80.00 % | 76.00 % (10.2 k) | 95.0% | 2.6 k | 10.2 k | not reached |" in md
    assert "| b | 80.00 % | 50.00 % (10.2 k) | 62.5% | not reached | not reached | not reached |" in md


@pytest.mark.slow
def test_log_grid_evaluates_between_epochs_and_resumes_to_the_same_rows(tiny_recipe, tmp_path: Path) -> None:
    import torch

    from aip import recipe as R
    from aip.run import run, train_teacher

    assert sorted(curve.log_steps(8, 3)) == [1, 2, 5] and curve.log_steps(8, 0) == frozenset()
    cpu = torch.device("cpu")
    assert sorted(curve.log_steps(8, 10)) == [1, 2, 3, 4, 5, 6, 8]
    recipe = R.load(tiny_recipe, ["train.epochs=2", "train.samples_per_epoch=256", "eval.log_grid=10",
                                  "eval.every_epochs=2"])
    train_teacher(recipe, device=cpu)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run(recipe, out=straight, device=cpu)
    rows = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    # the grid, step 4 included although epoch 1 has no evaluation of its own (eval.every_epochs = 2)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6, 8]
    assert [r["epoch"] for r in rows] == [0.25, 0.5, 0.75, 1, 1.25, 1.5, 2]
    run(recipe, out=resumed, device=cpu, stop_after_epochs=1)
    run(recipe, out=resumed, device=cpu)
    again = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["top1"]) for r in again] == [(r["step"], r["top1"]) for r in rows]
    c = curve.read_curve(straight)
    assert c is not None and c.views == [64, 128, 192, 256, 320, 384, 512]
