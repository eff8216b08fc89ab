"""aip sweep: expansion (grid, zip, seeds), names, resume, failures, devices, SLURM, and bad sweep files."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pytest

from aip import sweep as sweep_mod
from aip.errors import AipError
from aip.interrupts import Interrupted
from tests.conftest import run_cli


def write_sweep(tmp_path: Path, tiny_recipe: Path, body: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(f'base = "{tiny_recipe.name}"\n' + body)
    return path


GRID = """
seeds = 2
set = ["train.epochs=1"]
[[axis]]
key = "loss.temperature"
values = [1.0, 4.0]
[[axis]]
key = "source.uri"
values = ["skimage:astronaut", "synthetic:noise"]
labels = ["astro", "noise"]
"""


def fake_runner(calls: list[str], fail: set[str] = frozenset(), top1: float = 50.0):
    """A runner that writes a finished metrics.json (or raises for names in ``fail``)."""

    def run(s, v, run_dir: Path, device: str) -> None:
        calls.append(v.name)
        if v.name in fail:
            raise RuntimeError(f"boom in {v.name}")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.json").write_text(json.dumps({
            "finished": True, "student": {"top1": top1 + (v.seed or 0)}, "student_best": {"top1": top1 + 1},
            "teacher": {"top1": 90.0}, "ratio": (top1 + (v.seed or 0)) / 90.0, "wall_seconds": 60.0}))

    return run


def test_grid_expands_every_combination_with_seeds_innermost(tmp_path, tiny_recipe) -> None:
    s = sweep_mod.load(write_sweep(tmp_path, tiny_recipe, GRID))
    names = [v.name for v in s.variants()]
    assert names == [
        "temperature-1.0_uri-astro_seed-0", "temperature-1.0_uri-astro_seed-1",
        "temperature-1.0_uri-noise_seed-0", "temperature-1.0_uri-noise_seed-1",
        "temperature-4.0_uri-astro_seed-0", "temperature-4.0_uri-astro_seed-1",
        "temperature-4.0_uri-noise_seed-0", "temperature-4.0_uri-noise_seed-1",
    ]
    v = s.variants()[3]
    assert v.overrides == ["train.epochs=1", "loss.temperature=1.0", 'source.uri="synthetic:noise"', "train.seed=1"]
    assert v.point == {"loss.temperature": 1.0, "source.uri": "synthetic:noise"} and v.seed == 1
    assert len(sweep_mod.validate(s)) == 8  # every variant's recipe loads


def test_zip_pairs_values_and_the_recipe_form(tmp_path, tiny_recipe) -> None:
    s = sweep_mod.load(write_sweep(tmp_path, tiny_recipe, GRID.replace("seeds = 2", 'mode = "zip"')))
    assert [v.name for v in s.variants()] == ["temperature-1.0_uri-astro", "temperature-4.0_uri-noise"]
    r = sweep_mod.load(tiny_recipe, axes=["student.kwargs.width=4,8", "augment.crop_scale=[0.5,1.0],[0.2,1.0]"],
                       seeds=3)
    assert len(r.variants()) == 2 * 2 * 3
    assert r.variants()[0].name == "width-4_crop_scale-0.5-1.0_seed-0"
    assert "augment.crop_scale=[0.5, 1.0]" in r.variants()[0].overrides
    from aip import recipe as recipe_mod

    loaded = recipe_mod.load(tiny_recipe, r.variants()[-1].overrides)
    assert loaded.augment.crop_scale == (0.2, 1.0) and loaded.student.kwargs["width"] == 8
    assert loaded.train.seed == 2


def test_resume_skips_finished_variants_and_a_failure_does_not_stop_the_others(tmp_path, tiny_recipe) -> None:
    s = sweep_mod.load(write_sweep(tmp_path, tiny_recipe, GRID))
    out = tmp_path / "out"
    calls: list[str] = []
    bad = "temperature-1.0_uri-noise_seed-0"
    result = sweep_mod.sweep(s, out=out, runner=fake_runner(calls, fail={bad}), echo=lambda _: None)
    assert len(calls) == 8  # the failure did not stop the rest
    assert result.failed == [(bad, f"RuntimeError: boom in {bad}")]
    assert len(result.done) == 7
    assert "boom" in (out / bad / sweep_mod.ERROR_LOG).read_text()
    plan = json.loads((out / sweep_mod.PLAN).read_text())
    assert len(plan["variants"]) == 8 and plan["variants"][0]["command"].startswith("aip run ")
    calls.clear()
    again = sweep_mod.sweep(s, out=out, runner=fake_runner(calls), echo=lambda _: None)
    assert calls == [bad]  # only the failed one is run again
    assert len(again.skipped) == 7 and again.done == [bad] and not again.failed


def test_an_interrupted_run_stops_the_sweep_and_is_resumed(tmp_path, tiny_recipe) -> None:
    s = sweep_mod.load(write_sweep(tmp_path, tiny_recipe, GRID))
    out, calls = tmp_path / "out", []
    ok = fake_runner(calls)

    def runner(s_, v, run_dir, device):
        if len(calls) == 2:
            calls.append(v.name)
            run_dir.mkdir(parents=True)
            (run_dir / "metrics.json").write_text(json.dumps({"finished": False, "student": {"top1": 3.0}}))
            raise Interrupted(step=5, signum=2)
        ok(s_, v, run_dir, device)

    with pytest.raises(Interrupted):
        sweep_mod.sweep(s, out=out, runner=runner, echo=lambda _: None)
    assert len(calls) == 3
    calls.clear()
    sweep_mod.sweep(s, out=out, runner=ok, echo=lambda _: None)
    assert calls[0] == "temperature-1.0_uri-noise_seed-0" and len(calls) == 6  # the stopped one resumes first


def test_dry_run_lists_commands_and_writes_nothing(tmp_path, tiny_recipe) -> None:
    s = sweep_mod.load(write_sweep(tmp_path, tiny_recipe, GRID))
    lines: list[str] = []
    sweep_mod.sweep(s, out=tmp_path / "out", dry_run=True, echo=lines.append)
    assert len(lines) == 8 and "--set loss.temperature=1.0" in lines[0] and "(to run)" in lines[0]
    assert not (tmp_path / "out").exists()
    shipped = sweep_mod.load(Path(__file__).resolve().parents[2] / "recipes" / "sweeps" / "clips-motion.toml")
    assert shipped.base.parts[-2:] == ("recipes", "motion.toml")  # printed without "sweeps/.."


def test_devices_run_one_subprocess_per_device(tmp_path, tiny_recipe, monkeypatch) -> None:
    s = sweep_mod.load(write_sweep(tmp_path, tiny_recipe, GRID))
    seen: list[tuple[str, str]] = []

    def fake_subprocess(cmd: list[str], log: Path) -> int:
        run_dir = Path(cmd[cmd.index("--out") + 1])
        seen.append((run_dir.name, cmd[cmd.index("--device") + 1]))
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.json").write_text(json.dumps({"finished": True}))
        return 0 if "seed-0" in run_dir.name else 3

    monkeypatch.setattr(sweep_mod, "run_subprocess", fake_subprocess)
    result = sweep_mod.sweep(s, out=tmp_path / "out", devices=["cuda:0", "cuda:1"], echo=lambda _: None)
    assert sorted(d for _, d in seen) == ["cuda:0"] * 4 + ["cuda:1"] * 4
    assert len(result.done) == 4 and len(result.failed) == 4
    assert all("code 3" in why for _, why in result.failed)


def test_submitit_sends_unfinished_variants_as_one_array(tmp_path, tiny_recipe, monkeypatch) -> None:
    s = sweep_mod.load(write_sweep(tmp_path, tiny_recipe, GRID + "[slurm]\ntimeout_min = 60\n"))
    out = tmp_path / "out"
    (out / s.variants()[0].name).mkdir(parents=True)
    (out / s.variants()[0].name / "metrics.json").write_text(json.dumps({"finished": True}))
    made = {}

    class Executor:
        def map_array(self, fn, args):
            made["fn"], made["args"] = fn, args
            return [types.SimpleNamespace(job_id=f"42_{i}") for i in range(len(args))]

    def fake_executor(folder, params):
        made["folder"], made["params"] = folder, params
        return Executor()

    monkeypatch.setattr(sweep_mod, "slurm_executor", fake_executor)
    result = sweep_mod.sweep(s, out=out, submitit=True, echo=lambda _: None)
    assert made["fn"] is sweep_mod.run_array_task and len(made["args"]) == 7
    assert made["params"] == {"name": "s", "timeout_min": 60} and made["folder"] == out / "slurm"
    assert made["args"][0][:2] == ["aip", "run"] and result.submitted[0] == (s.variants()[1].name, "42_0")


def test_submitit_missing_is_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(AipError, match=r"pip install 'aip\[cluster\]'"):
        sweep_mod.slurm_executor(tmp_path, {})


@pytest.mark.parametrize("body, message", [
    ("[[axis]]\nkey = 'loss.temperature'\nvalues = []\n", "values must be a non-empty list"),
    ("[[axis]]\nkey = 'temperature'\nvalues = [1]\n", "must be a recipe key"),
    ("[[axis]]\nkey = 'loss.temperature'\nvalues = [1, 2]\nlabels = ['a']\n", "one non-empty string per value"),
    ("[[axis]]\nkey = 'loss.temperature'\nvalues = [1]\nvalue = 2\n", "unknown [[axis]] key 'value'"),
    ("seeds = 0\n[[axis]]\nkey = 'loss.temperature'\nvalues = [1]\n", "seeds must be a count"),
    ("mode = 'zip'\n[[axis]]\nkey = 'loss.temperature'\nvalues = [1, 2]\n[[axis]]\nkey = 'train.lr'\nvalues = [1]\n",
     "equal length"),
    ("axes = 1\n", "unknown key 'axes'"),
    ("[report]\nscatter = ['png_bytes']\nsource_stats = false\n[[axis]]\nkey = 'loss.temperature'\nvalues = [1]\n",
     "allows only scatter"),
])
def test_bad_sweep_files_are_one_line_errors(tmp_path, tiny_recipe, body, message) -> None:
    with pytest.raises(AipError, match=message.replace("[", r"\[").replace("]", r"\]")):
        sweep_mod.load(write_sweep(tmp_path, tiny_recipe, body))


def test_a_variant_with_a_bad_value_names_the_variant(tmp_path, tiny_recipe) -> None:
    s = sweep_mod.load(write_sweep(tmp_path, tiny_recipe, "[[axis]]\nkey = 'loss.temperature'\nvalues = [1, -2]\n"))
    with pytest.raises(AipError, match="variant temperature--2: .*loss.temperature"):
        sweep_mod.validate(s)


def test_cli_bad_sweep_file_exits_2_with_one_line(tmp_path, tiny_recipe) -> None:
    path = write_sweep(tmp_path, tiny_recipe, "[[axis]]\nkey = 'loss.temperature'\nvalues = 3\n")
    r = run_cli("sweep", str(path), "--dry-run")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "values must be a non-empty list" in r.stderr
    missing = write_sweep(tmp_path, tiny_recipe, "[[axis]]\nkey = 'loss.temperature'\nvalues = [1]\n", "m.toml")
    missing.write_text(missing.read_text().replace(tiny_recipe.name, "nope.toml"))
    r = run_cli("sweep", str(missing), "--dry-run")
    assert r.returncode == 2 and "base recipe" in r.stderr and "does not exist" in r.stderr


def test_zip_names_name_the_variants_and_the_report_axis(tmp_path, tiny_recipe) -> None:
    body = ('mode = "zip"\nnames = ["full", "no-flip"]\n[[axis]]\nkey = "augment.hflip"\nvalues = [0.5, 0.0]\n'
            '[[axis]]\nkey = "loss.temperature"\nvalues = [4.0, 4.0]\n')
    s = sweep_mod.load(write_sweep(tmp_path, tiny_recipe, body))
    assert [v.name for v in s.variants()] == ["full", "no-flip"]
    assert s.variants()[1].labels == {"variant": "no-flip"}
    assert s.variants()[1].point == {"variant": "no-flip", "augment.hflip": 0.0, "loss.temperature": 4.0}
    plan = s.plan(tmp_path / "out")
    assert plan["axes"] == [{"key": "variant", "values": ["full", "no-flip"], "labels": ["full", "no-flip"]}]
    with pytest.raises(AipError, match="names name the points"):
        sweep_mod.load(write_sweep(tmp_path, tiny_recipe, body.replace('mode = "zip"', 'mode = "grid"')))
    with pytest.raises(AipError, match="one distinct plain folder name"):
        sweep_mod.load(write_sweep(tmp_path, tiny_recipe, body.replace('"no-flip"]', '"no flip"]')))


def test_cli_dry_run_and_report(tmp_path, tiny_recipe) -> None:
    from tests.conftest import fake_sweep

    path = write_sweep(tmp_path, tiny_recipe, GRID)
    r = run_cli("sweep", str(path), "--out", str(tmp_path / "o"), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("aip run ") == 8 and "--set train.seed=1" in r.stdout
    fake_sweep(tmp_path / "f", {"a": [(60.0, 61.0)], "b": [(50.0, 52.0)]}, values={"a": 1.0, "b": 2.0})
    r = run_cli("report", str(tmp_path / "f"))
    assert r.returncode == 0, r.stderr
    assert "Made by `aip report " in (tmp_path / "f" / "report.md").read_text()


def test_only_runs_the_matching_variants_and_the_rest_later(tmp_path, tiny_recipe) -> None:
    s = sweep_mod.load(write_sweep(tmp_path, tiny_recipe, GRID))
    out = tmp_path / "out"
    calls: list[str] = []
    result = sweep_mod.sweep(s, out=out, only=["*uri-noise_seed-0", "temperature-4.0_uri-astro_seed-1"],
                             runner=fake_runner(calls), echo=lambda _: None)
    assert calls == ["temperature-1.0_uri-noise_seed-0", "temperature-4.0_uri-astro_seed-1",
                     "temperature-4.0_uri-noise_seed-0"]
    assert sorted(result.done) == sorted(calls)
    assert len(json.loads((out / sweep_mod.PLAN).read_text())["variants"]) == 8  # the plan keeps every variant
    calls.clear()
    sweep_mod.sweep(s, out=out, runner=fake_runner(calls), echo=lambda _: None)
    assert len(calls) == 5 and "temperature-4.0_uri-noise_seed-0" not in calls  # the rest, once
    with pytest.raises(AipError, match=r"--only 'temp-\*' matches no variant"):
        sweep_mod.sweep(s, out=out, only=["temp-*"], runner=fake_runner(calls), echo=lambda _: None)


def test_cli_only_typo_exits_2_with_one_line(tmp_path, tiny_recipe) -> None:
    path = write_sweep(tmp_path, tiny_recipe, GRID)
    r = run_cli("sweep", str(path), "--out", str(tmp_path / "o"), "--only", "temperature-1.0_*", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("aip run ") == 4
    r = run_cli("sweep", str(path), "--out", str(tmp_path / "o"), "--only", "nothing-*", "--dry-run")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "matches no variant" in r.stderr


def recipe_runner(calls: list[str]):
    """A fake runner that also writes the variant's resolved recipe.toml, as ``aip run`` does."""
    from aip import recipe as recipe_mod

    fake = fake_runner(calls)

    def run(s, v, run_dir: Path, device: str) -> None:
        fake(s, v, run_dir, device)
        (run_dir / "recipe.toml").write_text(recipe_mod.load(s.base, v.overrides).to_toml())

    return run


def test_reuse_copies_runs_with_the_same_resolved_recipe(tmp_path, tiny_recipe) -> None:
    """--reuse: a variant equal (recipe and seed) to a finished run elsewhere is copied, not run; a different
    seed or value, a started variant, an unfinished donor and the sweep's own runs are not used."""
    first = sweep_mod.load(write_sweep(tmp_path, tiny_recipe, GRID))
    donors, calls = tmp_path / "first", []
    sweep_mod.sweep(first, out=donors, runner=recipe_runner(calls), echo=lambda _: None)
    unfinished = donors / "temperature-4.0_uri-astro_seed-1" / "metrics.json"
    unfinished.write_text(json.dumps({**json.loads(unfinished.read_text()), "finished": False}))
    second = sweep_mod.load(write_sweep(tmp_path, tiny_recipe, """
seeds = 2
set = ["train.epochs=1", 'source.uri="skimage:astronaut"']
[[axis]]
key = "loss.temperature"
values = [1.0, 4.0, 8.0]
""", name="second.toml"))
    out = tmp_path / "second"
    (out / "temperature-1.0_seed-1").mkdir(parents=True)
    (out / "temperature-1.0_seed-1" / "last.pt").write_bytes(b"started")  # resumes, is never replaced
    lines: list[str] = []
    sweep_mod.sweep(second, out=out, dry_run=True, reuse=[donors], echo=lines.append)
    assert any("temperature-4.0_seed-0  (to copy from" in line for line in lines)
    calls.clear()
    result = sweep_mod.sweep(second, out=out, reuse=[donors], runner=recipe_runner(calls), echo=lambda _: None)
    assert result.copied == ["temperature-1.0_seed-0", "temperature-4.0_seed-0"]
    assert calls == ["temperature-1.0_seed-1", "temperature-4.0_seed-1", "temperature-8.0_seed-0",
                     "temperature-8.0_seed-1"]
    copied = json.loads((out / "temperature-4.0_seed-0" / "metrics.json").read_text())
    donor = donors / "temperature-4.0_uri-astro_seed-0"
    assert copied["copied_from"] == str(donor) and copied["run_dir"] == str(out / "temperature-4.0_seed-0")
    assert copied["student"] == json.loads((donor / "metrics.json").read_text())["student"]
    assert (out / "temperature-4.0_seed-0" / "recipe.toml").read_text() == (donor / "recipe.toml").read_text()
    assert "2 copied" in result.summary()
    calls.clear()
    again = sweep_mod.sweep(second, out=out, reuse=[out, donors], runner=recipe_runner(calls), echo=lambda _: None)
    assert not calls and not again.copied and len(again.skipped) == 6
    with pytest.raises(AipError, match="--reuse .*not a folder"):
        sweep_mod.sweep(second, out=out, reuse=[tmp_path / "missing"], runner=recipe_runner(calls))


def test_cli_reuse_of_a_missing_folder_exits_2_with_one_line(tmp_path, tiny_recipe) -> None:
    path = write_sweep(tmp_path, tiny_recipe, GRID)
    r = run_cli("sweep", str(path), "--out", str(tmp_path / "o"), "--reuse", str(tmp_path / "nope"), "--dry-run")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--reuse" in r.stderr, r.stderr


def test_a_second_sweep_into_the_same_folder_is_refused_at_once(tmp_path, tiny_recipe) -> None:
    """Two sweeps into one folder both exited 1 and left a traceback in a sweep-error.txt of runs the other one
    finished. The folder's lock (the one a run holds on its own folder) refuses the second sweep in one line,
    before it writes anything, and the first one's runs end as if it were alone."""
    s = sweep_mod.load(write_sweep(tmp_path, tiny_recipe, 'seeds = 2\nset = ["train.epochs=1"]\n'))
    out, calls, refusals = tmp_path / "out", [], []
    ok = fake_runner(calls)

    def runner(s_, v, run_dir, device):  # while the first sweep runs its second variant, a second sweep starts
        if len(calls) == 1:
            with pytest.raises(AipError) as e:
                sweep_mod.sweep(s, out=out, runner=fake_runner(refusals), echo=lambda _: None)
            refusals.append(str(e.value))
        ok(s_, v, run_dir, device)

    result = sweep_mod.sweep(s, out=out, runner=runner, echo=lambda _: None)
    assert len(result.done) == 2 and not result.failed
    assert len(refusals) == 1 and "\n" not in refusals[0], refusals  # the second ran no variant
    assert refusals[0] == f"{out} is in use by another aip sweep (process {os.getpid()}); wait for it to end, or " \
                          "pass --out NEW_DIR"
    assert not list(out.rglob(sweep_mod.ERROR_LOG))
    again = sweep_mod.sweep(s, out=out, runner=fake_runner(calls), echo=lambda _: None)  # the lock was released
    assert len(again.skipped) == 2


def test_a_sweep_folder_that_is_a_file_is_one_line(tmp_path, tiny_recipe) -> None:
    s = sweep_mod.load(write_sweep(tmp_path, tiny_recipe, 'seeds = 2\nset = ["train.epochs=1"]\n'))
    (tmp_path / "afile").write_text("mine")
    for out in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        with pytest.raises(AipError) as e:
            sweep_mod.sweep(s, out=out, runner=fake_runner([]), echo=lambda _: None)
        assert "\n" not in str(e.value) and "afile" in str(e.value), e.value
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_variant_failing_with_an_aip_error_logs_its_line_not_a_traceback(tmp_path, tiny_recipe) -> None:
    s = sweep_mod.load(write_sweep(tmp_path, tiny_recipe, GRID))
    out = tmp_path / "out"

    def runner(s_, v, run_dir, device):
        raise AipError(f"{run_dir} is in use by another aip run (process 1); wait for it to end")

    result = sweep_mod.sweep(s, out=out, only=["*astro_seed-0"], runner=runner, echo=lambda _: None)
    assert len(result.failed) == 2
    logs = sorted(out.rglob(sweep_mod.ERROR_LOG))
    assert len(logs) == 2 and all("Traceback" not in p.read_text() and "in use" in p.read_text() for p in logs)


def test_a_variant_path_that_is_a_users_file_fails_that_variant_in_one_line(tmp_path, tiny_recipe) -> None:
    """Found by a second hostile round: OUT/VARIANT a regular file made the sweep itself die with a traceback
    (FileExistsError) while writing sweep-error.txt; the variant fails with its line, the other runs, and the
    file is left as it was."""
    s = sweep_mod.load(write_sweep(tmp_path, tiny_recipe, 'seeds = 2\nset = ["train.epochs=1"]\n'))
    out, calls = tmp_path / "out", []
    first = s.variants()[0].name
    out.mkdir()
    (out / first).write_text("mine")
    ok = fake_runner(calls)

    def runner(s_, v, run_dir, device):
        if run_dir.exists() and not run_dir.is_dir():
            raise AipError(f"run directory {run_dir} is not writable (File exists)")
        ok(s_, v, run_dir, device)

    result = sweep_mod.sweep(s, out=out, runner=runner, echo=lambda _: None)
    assert [name for name, _ in result.failed] == [first] and len(result.done) == 1
    assert (out / first).read_text() == "mine"
