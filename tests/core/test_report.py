"""aip report: aggregation over seeds, the R² fit, figures; and one real tiny sweep end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from aip import report as report_mod
from aip.errors import AipError
from aip.sweep import PLAN
from tests.conftest import fake_sweep, one_line, run_cli


def test_aggregation_matches_hand_computed_mean_and_sample_std(tmp_path) -> None:
    fake_sweep(tmp_path / "s", {"a": [(60.0, 62.0), (62.0, 63.0), (67.0, 67.0)], "b": [(50.0, 55.0)]},
               values={"a": 0.1, "b": 0.2})
    (group,) = report_mod.collect([tmp_path / "s"])
    a, b = report_mod.aggregate(group)
    assert a.n == 3 and a.labels == {"train.lr": "a"}
    assert a.last[0] == pytest.approx(63.0)
    # sample std of 60, 62, 67: deviations -3, -1, 4 -> (9 + 1 + 16) / 2 = 13
    assert a.last[1] == pytest.approx(math.sqrt(13.0))
    assert a.best[0] == pytest.approx(64.0) and a.best[1] == pytest.approx(math.sqrt(7.0))
    assert a.ratio[0] == pytest.approx(100 * 63.0 / 80.0)
    assert a.run_minutes == pytest.approx(3.0)  # (120 + 180 + 240) / 3 s
    assert b.n == 1 and b.last == (50.0, pytest.approx(math.nan, nan_ok=True)) and math.isnan(b.last[1])
    # a resumed run: wall_seconds is its last invocation only; the phases add up over every invocation
    resumed = {"wall_seconds": 30.0, "time": {"setup_and_teacher_training": 5.0, "teacher_evaluation": 1.0,
                                              "distillation_steps": 100.0, "evaluations": 20.0}}
    assert report_mod.run_seconds(resumed) == pytest.approx(120.0)
    assert report_mod.run_seconds({"wall_seconds": 30.0}) == 30.0 and report_mod.run_seconds({}) is None
    text = report_mod.table(group, [a, b])
    assert "63.00 ± 3.61" in text and "| 50.00 |" in text


def test_missing_and_unfinished_runs_are_counted(tmp_path) -> None:
    fake_sweep(tmp_path / "s", {"a": [(60.0, 61.0), (62.0, 63.0)]}, values={"a": 0.1})
    (tmp_path / "s" / "x-a_seed-1" / "metrics.json").unlink()
    (group,) = report_mod.collect([tmp_path / "s"])
    (row,) = report_mod.aggregate(group)
    assert row.n == 1 and row.missing == 1 and row.last[0] == 60.0
    assert "1 (+1 missing)" in report_mod.table(group, [row])


def test_fit_line_r2() -> None:
    slope, intercept, r2 = report_mod.fit_line([0, 1, 2, 3], [1, 3, 5, 7])
    assert (slope, intercept, r2) == (pytest.approx(2.0), pytest.approx(1.0), pytest.approx(1.0))
    # y = x plus residuals (+1, -1, -1, +1): slope = cov/var = 5/5 = 1, intercept 1.5 - 1.5 = 0,
    # SS_res = 4, SS_tot = 0.25 + 2.25 + 0.25 + 6.25 = 9, R² = 1 - 4/9
    slope, intercept, r2 = report_mod.fit_line([0, 1, 2, 3], [1, 0, 1, 4])
    assert slope == pytest.approx(1.0) and intercept == pytest.approx(0.0, abs=1e-12)
    assert r2 == pytest.approx(5 / 9)
    with pytest.raises(ValueError):
        report_mod.fit_line([1, 1], [2, 3])


def test_the_teacher_is_marked_per_point_when_it_changes_along_the_sweep() -> None:
    def row(x: int, teacher: float) -> report_mod.Row:
        return report_mod.Row(labels={"k": str(x)}, point={"k": x}, n=1, missing=0, unfinished=0, last=(50.0, 0.0),
                              best=(50.0, 0.0), ratio=(0.0, 0.0), teacher=teacher, run_minutes=1.0)

    x_of = lambda r: r.point["k"]  # noqa: E731
    same = [row(5, 90.0), row(15, 90.0), row(30, math.nan)]
    assert report_mod.teacher_marks(same, x_of) == [(None, 90.0)]  # one teacher: a line across
    sweep = [row(30, 90.0), row(5, 56.0), row(15, 86.0), row(5, 58.0)]  # a teacher sweep, two series at 5
    assert report_mod.teacher_marks(sweep, x_of) == [(5, 57.0), (15, 86.0), (30, 90.0)]  # not their mean, 77.5
    assert report_mod.teacher_marks([row(1, math.nan)], x_of) == []


def test_report_writes_markdown_and_figures_with_the_command(tmp_path) -> None:
    fake_sweep(tmp_path / "s", {"a": [(60.0, 62.0), (62.0, 63.0)], "b": [(50.0, 55.0), (52.0, 53.0)],
                                "c": [(40.0, 41.0), (44.0, 45.0)]},
               values={"a": 0.001, "b": 0.01, "c": 0.1}, stats={"a": 3e5, "b": 2e5, "c": 1e5})
    path = report_mod.report([tmp_path / "s"], command="aip report s")
    text = path.read_text()
    assert path == tmp_path / "s" / "report.md"
    assert "## s" in text and "last top-1" in text and "best top-1" in text and "Sweep: `aip sweep s.toml`" in text
    assert "![s: accuracy](s-accuracy.png)" in text and "Made by `aip report s`" in text
    # the three means are 61, 51, 42 against 3e5, 2e5, 1e5: R² of that line
    _, _, r2 = report_mod.fit_line([3e5, 2e5, 1e5], [61.0, 51.0, 42.0])
    assert f"R² = {r2:.3f}" in text
    for png in ("s-accuracy.png", "s-vs-png_bytes.png"):
        assert (tmp_path / "s" / png).read_bytes()[:4] == b"\x89PNG"
    assert "Copied, not run again" not in text
    m = tmp_path / "s" / "x-b_seed-1" / "metrics.json"
    m.write_text(json.dumps({**json.loads(m.read_text()), "copied_from": "runs/other/x_seed-1"}))
    text = report_mod.report([tmp_path / "s"], command="aip report s").read_text()
    assert "Copied, not run again" in text and "`x-b_seed-1` from `runs/other/x_seed-1`" in text


def test_plain_run_directories_and_bad_dirs(tmp_path) -> None:
    fake_sweep(tmp_path / "s", {"a": [(60.0, 62.0)], "b": [(50.0, 55.0)]}, values={"a": 1, "b": 2})
    runs = [tmp_path / "s" / "x-a_seed-0", tmp_path / "s" / "x-b_seed-0"]
    path = report_mod.report(runs, out=tmp_path / "r")
    assert "x-a_seed-0" in path.read_text() and (tmp_path / "r" / "x-a_seed-0-accuracy.png").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(AipError, match="no sweep.json and no run directory"):
        report_mod.report([tmp_path / "empty"])


@pytest.mark.timeout(300)
def test_tiny_sweep_end_to_end_with_source_stats_and_report(tmp_path, tiny_recipe) -> None:
    """One real sweep: 2 variants of the tiny recipe, 1 epoch each, source stats; then its report."""
    from aip.sweep import sweep

    tiny_recipe.write_text(tiny_recipe.read_text().replace("samples_per_epoch = 1024", "samples_per_epoch = 128"))
    sweep_file = tmp_path / "t.toml"
    sweep_file.write_text(f'base = "{tiny_recipe.name}"\nset = ["train.epochs=1", "teacher.fit.epochs=1"]\n'
                          '[report]\nscatter = ["png_bytes"]\n'
                          '[[axis]]\nkey = "source.uri"\nvalues = ["skimage:astronaut", "synthetic:noise"]\n')
    out = tmp_path / "out"
    result = sweep(sweep_file, out=out, device="cpu", echo=lambda _: None)
    assert result.done == ["uri-astronaut", "uri-noise"] and not result.failed
    for name in result.done:
        assert json.loads((out / name / "metrics.json").read_text())["finished"]
        assert 'uri = "' in (out / name / "recipe.toml").read_text()
        stats = json.loads((out / name / "source_stats.json").read_text())
        assert stats["png_bytes"] > 0 and 0 <= stats["teacher_class_coverage"] <= 1  # the teacher was cached
    assert sweep(sweep_file, out=out, device="cpu", echo=lambda _: None).skipped == result.done
    text = report_mod.report([out]).read_text()
    assert "`astronaut`" in text and "R² = 1.000" in text  # two points: a line through both


DOCUMENTED = sorted(p.parent for p in (Path(__file__).resolve().parents[2] / "docs" / "analyses").glob("*/" + PLAN))


@pytest.mark.parametrize("folder", DOCUMENTED, ids=[p.name for p in DOCUMENTED])
def test_documented_analyses_match_their_run_data(folder: Path) -> None:
    """docs/analyses/SWEEP/ holds run data that today's report code reads, and its report.md holds the table that
    data gives: after new runs or a change to the table, redraw it with `aip report docs/analyses/SWEEP`."""
    (group,) = report_mod.collect([folder])
    rows = report_mod.aggregate(group)
    assert any(r.n for r in rows), f"{folder.name}: no finished run"
    assert report_mod.table(group, rows) in (folder / "report.md").read_text(), (
        f"{folder.name}/report.md is stale: run `aip report docs/analyses/{folder.name}`")
    planned = {r.name for r in group.runs}
    kept = {p.parent.name for p in folder.glob("*/metrics.json")}
    assert kept <= planned, f"runs outside the sweep's plan: {sorted(kept - planned)}"
    for p in folder.glob("*/metrics.json"):
        metrics = json.loads(p.read_text())
        assert metrics.get("finished"), f"{p.parent.name} is unfinished; keep finished runs only"
        run_dir = metrics.get("run_dir", "")
        assert not Path(run_dir).is_absolute(), f"{p.parent.name}: run_dir {run_dir!r} names a machine's path"


# ------------------------------------------------------------------------------------------------ damaged inputs
def _plan(folder: Path) -> dict:
    return json.loads((folder / PLAN).read_text())


@pytest.mark.parametrize(("edit", "fragment"), [
    (lambda p: "{", "is not JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
    (lambda p: "[]", "the file is a list, not an object"),
    (lambda p: json.dumps({k: v for k, v in p.items() if k != "variants"}), "has no variants"),
    (lambda p: json.dumps({**p, "variants": "x-a_seed-0"}), "variants is a string, not a list"),
    (lambda p: json.dumps({**p, "variants": [1]}), "variants[0] is a number, not an object"),
    (lambda p: json.dumps({**p, "variants": [{**p["variants"][0], "point": [0.1]}]}),
     "variants[0].point is a list, not an object"),
    (lambda p: json.dumps({**p, "variants": [{**p["variants"][0], "seed": "0"}]}),
     "variants[0].seed is a string, not a whole number"),
    (lambda p: json.dumps({**p, "variants": [{**p["variants"][0], "name": "../../elsewhere"}]}),
     "is not a run folder's name"),
    (lambda p: json.dumps({**p, "axes": [{"values": [1]}]}), "axes[0].key is null, not a string"),
    (lambda p: json.dumps({**p, "report": {"scatter": "png_bytes"}}), "report.scatter is a string, not a list"),
    (lambda p: json.dumps(p).replace('"train.lr": 0.1', '"train.lr": NaN'), "holds NaN"),
])
def test_a_damaged_sweep_json_is_one_line_naming_the_file(tmp_path, edit, fragment) -> None:
    fake_sweep(tmp_path / "s", {"a": [(60.0, 62.0)]}, values={"a": 0.1})
    (tmp_path / "s" / PLAN).write_text(edit(_plan(tmp_path / "s")))
    with pytest.raises(AipError) as e:
        report_mod.report([tmp_path / "s"], out=tmp_path / "r")
    one_line(e, str(tmp_path / "s" / PLAN), fragment, "run the sweep again")
    assert not (tmp_path / "r" / "report.md").exists()


@pytest.mark.parametrize(("content", "fragment"), [
    ("{", "is not JSON"),
    ("[1, 2]", "the file is a list, not an object"),
    (json.dumps({"teacher": {"top1": 80.0}}), "has no student.top1"),
    (json.dumps({"student": {"top1": "61.0"}}), "student.top1 is a string, not a number"),
    ('{"student": {"top1": NaN}}', "student.top1 is nan (not measured)"),
    (json.dumps({"student": {"top1": 610.0}}), "student.top1 is 610.0, outside 0..100"),
    (json.dumps({"student": {"top1": 61.0}, "finished": "yes"}), "finished is a string, not true or false"),
    (json.dumps({"student": {"top1": 61.0}, "time": [1, 2]}), "time is a list, not an object"),
    (json.dumps({"student": {"top1": 61.0}, "wall_seconds": "2 min"}), "wall_seconds is a string, not a number"),
])
def test_a_damaged_metrics_json_skips_the_run_with_a_warning(tmp_path, capsys, content, fragment) -> None:
    fake_sweep(tmp_path / "s", {"a": [(60.0, 62.0), (64.0, 64.0)]}, values={"a": 0.1})
    damaged = tmp_path / "s" / "x-a_seed-1" / "metrics.json"
    damaged.write_text(content)
    (group,) = report_mod.collect([tmp_path / "s"])  # what report() tables: the other seed is still reported
    assert "| `a` | 1 (+1 missing) | 60.00 |" in report_mod.table(group, report_mod.aggregate(group))
    warning = capsys.readouterr().err.strip()
    assert "\n" not in warning and warning.startswith(f"warning: {damaged} ") and fragment in warning
    assert "left out of the report" in warning


@pytest.mark.parametrize(("recipe", "fragment"), [
    ("[train\nseed = 0\n", "is not TOML"),
    ("train = 3\n", "[train] is a number, not a table"),
    ('[train]\nseed = "1"\n', "train.seed is a string, not a whole number"),
])
def test_a_damaged_recipe_toml_of_a_plain_run_is_a_warning(tmp_path, capsys, recipe, fragment) -> None:
    fake_sweep(tmp_path / "s", {"a": [(60.0, 62.0)], "b": [(50.0, 55.0)]}, values={"a": 1, "b": 2})
    runs = [tmp_path / "s" / "x-a_seed-0", tmp_path / "s" / "x-b_seed-0"]
    (runs[0] / "recipe.toml").write_text(recipe)
    (runs[1] / "recipe.toml").write_text("[train]\nseed = 4\n")
    (group,) = report_mod.collect(runs[:1])
    assert group.runs[0].seed is None
    warning = capsys.readouterr().err.strip()
    assert "\n" not in warning and warning.startswith(f"warning: {runs[0] / 'recipe.toml'} ") and fragment in warning
    assert [r.seed for r in report_mod.collect(runs[1:])[0].runs] == [4]


def test_damaged_evaluation_rows_and_source_stats_are_left_out(tmp_path, capsys, monkeypatch) -> None:
    from aip import curve

    for module in (report_mod, curve):  # the text is checked here, not the figures (tests/core/test_figures.py)
        monkeypatch.setattr(module, "save_figure", lambda fig, path, **_: (plt_close(fig), path)[1])
    fake_sweep(tmp_path / "s", {"a": [(60.0, 62.0)], "b": [(50.0, 55.0)]}, values={"a": 1, "b": 2},
               stats={"a": 3e5, "b": 2e5})
    run = tmp_path / "s" / "x-a_seed-0"
    m = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**m, "effective_batch": 64}))
    (run / "metrics.jsonl").write_text('[1, 2]\n{"step": 1e400, "top1": 5}\n{"step": 1, "top1": "x"}\n'
                                       '{"step": 2, "top1": 30.0}\n{"step": 4, "top1": 60.0}\n')
    (tmp_path / "s" / "x-b_seed-0" / "source_stats.json").write_text('{"png_bytes": Infinity}')
    text = report_mod.report([tmp_path / "s"], out=tmp_path / "r").read_text()
    assert "| x-a | 80.00 % | 60.00 % (256) |" in text  # the views curve from the two good rows
    assert "No scatter against `png_bytes`: fewer than two variants" in text
    err = capsys.readouterr().err
    assert "source_stats.json png_bytes is inf, not a finite number" in err and "its measures are left out" in err


def plt_close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_cli_report_of_a_damaged_sweep_json_is_one_line(tmp_path) -> None:
    fake_sweep(tmp_path / "s", {"a": [(60.0, 62.0)]}, values={"a": 0.1})
    (tmp_path / "s" / PLAN).write_text('{"variants": [{"name": "x-a_seed-0", "seed": 1.5}]}')
    r = run_cli("report", str(tmp_path / "s"), "--out", str(tmp_path / "r"))
    assert r.returncode == getattr(AipError, "exit_code", 2), r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert "sweep.json variants[0].seed is a number, not a whole number" in r.stderr
