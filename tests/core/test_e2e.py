"""End to end on CPU: train a teacher, distil a student from one photo, learn, write the files, resume."""

import json
import signal
import subprocess
import sys

import pytest
import torch

from aip import checkpoint
from aip import recipe as R
from aip.errors import AipError
from aip.run import run, train_teacher
from tests.conftest import TINY_RECIPE, run_cli

CPU = torch.device("cpu")
pytestmark = pytest.mark.slow


def test_teacher_then_distillation_learns_and_writes_the_contract(tiny_recipe, tmp_path):
    recipe = R.load(tiny_recipe)
    info = train_teacher(recipe, device=CPU)
    assert info["top1"] > 90.0  # the stripes set is easy for a supervised teacher
    out = tmp_path / "run"
    metrics = run(recipe, out=out, device=CPU)
    assert {p.name for p in out.iterdir()} >= {"metrics.json", "metrics.jsonl", "recipe.toml", "last.pt",
                                              "best.pt", "curves.png"}
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["teacher"]["top1"] == pytest.approx(info["top1"])
    assert {"top1", "top5"} <= set(saved["student"]) and saved["chance"] == 25.0 and saved["wall_seconds"] > 0
    # it learns: far above chance (25 %) from views of one photo, and the loss falls
    assert metrics["student"]["top1"] > 60.0, metrics  # measured 92 % (seed 0)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[-1]["train_loss_epoch"] < rows[0]["train_loss_epoch"]
    # the resolved recipe is saved and loads back to the same experiment
    assert R.load(out / "recipe.toml").fingerprint("train", "student", "teacher") == \
        recipe.fingerprint("train", "student", "teacher")


def test_interrupted_run_resumes_to_the_same_weights(tiny_recipe, tmp_path):
    recipe = R.load(tiny_recipe, ["train.log=['csv', 'tensorboard']"])  # and the trackers resume (aip.trackers)
    train_teacher(recipe, device=CPU)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run(recipe, out=straight, device=CPU)
    partial = run(recipe, out=resumed, device=CPU, stop_after_epochs=1)
    assert partial["steps"] == recipe.train.steps_per_epoch and not partial["finished"]
    done = run(recipe, out=resumed, device=CPU)
    assert done["finished"] and done["steps"] == recipe.train.total_steps
    a, b = checkpoint.load(straight / "last.pt"), checkpoint.load(resumed / "last.pt")
    for k, v in a["student"].items():
        assert torch.equal(v, b["student"][k]), k  # optimiser, scheduler and RNG were restored exactly
    epochs = [json.loads(line)["epoch"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4, 5, 6]
    assert_trackers_finished_once(resumed, total=recipe.train.total_steps, top1=done["student"]["top1"])


def assert_trackers_finished_once(out, *, total, top1):
    """The run's trackers hold each step once across the resume, and the end of the run: the final top-1,
    the hyper-parameters and the confusion matrix (TensorBoard), the final row (scalars.csv)."""
    import csv

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with (out / "scalars.csv").open(newline="") as f:
        logged = [r for r in csv.DictReader(f)]
    steps = [int(r["step"]) for r in logged if r["train/loss"]]
    assert steps == sorted(set(steps)) and steps[-1] == total
    assert float(logged[-1]["final/top1"]) == pytest.approx(top1)
    events = EventAccumulator(str(out / "tb"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert [s.step for s in events.Scalars("train/loss")] == steps
    assert [s.value for s in events.Scalars("final/top1")] == pytest.approx([top1])
    assert len(events.Images("confusion")) == 1 and "_hparams_/session_start_info" in \
        events.PluginTagToContent("hparams")


def test_run_dir_of_another_recipe_is_refused(tiny_recipe, tmp_path):
    recipe = R.load(tiny_recipe)
    out = tmp_path / "run"
    run(recipe, out=out, device=CPU, stop_after_epochs=1)
    other = R.load(tiny_recipe, ["train.lr=0.001"])
    with pytest.raises(AipError, match="holds a run of a different recipe"):
        run(other, out=out, device=CPU)
    assert checkpoint.load(out / "last.pt")["state"]["step"] == recipe.train.steps_per_epoch  # untouched


def _start_run(recipe, out):
    """``aip run`` in a subprocess, its output (stdout and stderr) readable line by line."""
    return subprocess.Popen([sys.executable, "-m", "aip", "run", str(recipe), "--out", str(out), "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)


def _wait_for_line(proc, text):
    """Read the process's output until a line containing ``text`` (an event, not a sleep); returns all read."""
    seen = []
    for line in iter(proc.stdout.readline, ""):
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"the run ended without printing {text!r}:\n{''.join(seen)[-3000:]}")


@pytest.fixture(scope="module")
def long_run(tmp_path_factory, stripes_root):
    """A 4-epoch recipe (64 steps), its teacher trained once into a cache of its own, and one uninterrupted run
    of it: shared by the tests below, which interrupt the same run in different ways (each writes only its own
    folders)."""
    base = tmp_path_factory.mktemp("long")
    recipe = base / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(root=stripes_root.as_posix(), epochs=4))
    env = {"AIP_CACHE": str(base / "cache")}
    teacher = run_cli("teacher", str(recipe), "--device", "cpu", env=env)
    assert teacher.returncode == 0, teacher.stderr
    straight = base / "straight"
    done = run_cli("run", str(recipe), "--out", str(straight), "--device", "cpu", env=env)
    assert done.returncode == 0, done.stderr
    return recipe, base / "cache", straight


@pytest.fixture
def long_recipe(long_run, monkeypatch):
    """The shared 4-epoch recipe, with ``AIP_CACHE`` (inherited by every subprocess) at its trained teacher."""
    recipe, cache, _ = long_run
    monkeypatch.setenv("AIP_CACHE", str(cache))
    return recipe


def test_cli_run_killed_mid_training_resumes(long_recipe, tmp_path):
    """A real crash: the process is killed (SIGKILL) right after its first checkpoint; the same command resumes."""
    out = tmp_path / "run"
    proc = _start_run(long_recipe, out)
    _wait_for_line(proc, "checkpoint: step 16 saved")
    proc.kill()
    proc.communicate()
    step = checkpoint.load(out / "last.pt")["state"]["step"]
    assert step == 16
    again = run_cli("run", str(long_recipe), "--out", str(out), "--device", "cpu")
    assert again.returncode == 0, again.stderr
    assert f"resuming {out} at step {step}/64" in again.stderr + again.stdout
    assert "student top-1" in again.stdout and json.loads((out / "metrics.json").read_text())["finished"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_at_a_step_boundary_and_resumes_bit_identically(long_run, long_recipe, tmp_path, signum):
    """Ctrl-C (or a cluster's SIGTERM) mid-epoch: a checkpoint at the step boundary, one line, exit 130/143;
    the same command then ends with exactly the weights of an uninterrupted run."""
    straight = long_run[2]
    out = tmp_path / "run"
    proc = _start_run(long_recipe, out)
    _wait_for_line(proc, "checkpoint: step 16 saved")  # then stop it somewhere in the second epoch
    proc.send_signal(signum)
    rest, _ = proc.communicate()
    assert proc.returncode == 128 + signum, rest
    stopped = checkpoint.load(out / "last.pt")["state"]["step"]
    assert 16 < stopped < 64, rest
    assert f"interrupted at step {stopped}; run the same command to resume" in rest and "Traceback" not in rest
    again = run_cli("run", str(long_recipe), "--out", str(out), "--device", "cpu")
    assert again.returncode == 0, again.stderr
    a, b = checkpoint.load(straight / "last.pt"), checkpoint.load(out / "last.pt")
    for k, v in a["student"].items():
        assert torch.equal(v, b["student"][k]), k
    def rows(run):  # the evaluations, without wall time; the loss summed in another order matches closely
        return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]

    for r, s in zip(rows(out), rows(straight), strict=True):
        assert r["train_loss_epoch"] == pytest.approx(s["train_loss_epoch"], rel=1e-5)
        assert {k: v for k, v in r.items() if k not in ("seconds", "train_loss_epoch")} == \
            {k: v for k, v in s.items() if k not in ("seconds", "train_loss_epoch")}


def test_bn_recalibration_is_off_by_default_and_labelled_when_on(tiny_recipe, tmp_path):
    recipe = R.load(tiny_recipe, ["train.epochs=1"])
    train_teacher(recipe, device=CPU)
    plain = run(recipe, out=tmp_path / "plain", device=CPU)
    assert not any("recalibrated" in k for k in plain)
    tuned = run(R.load(tiny_recipe, ["train.epochs=1", "eval.bn_recalibrate=true"]), out=tmp_path / "tuned", device=CPU)
    extra = tuned["student_bn_recalibrated_on_test_inputs"]
    assert 0 <= extra["top1"] <= 100
    assert tuned["student"]["top1"] == pytest.approx(plain["student"]["top1"])  # the method's number is unchanged
    from aip.cli import _table

    assert "BN re-estimated on TEST inputs" in _table(tuned)


def test_a_diverging_loss_stops_with_a_clear_error(tiny_recipe, tmp_path):
    from torch import nn

    from aip.trainer import fit

    recipe = R.load(tiny_recipe, ["train.log_every=2"])

    class NanTeacher(nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 4), float("nan"))

    class Views:
        def sample(self, n):
            return torch.rand(n, 3, 24, 24)

    student = nn.Sequential(nn.Flatten(), nn.Linear(3 * 24 * 24, 4))
    with pytest.raises(AipError, match=r"the loss became non-finite at step 1; nothing was saved after it: lower "
                                       r"train.lr"):
        fit(recipe=recipe, student=student, teacher=NanTeacher(), sampler=Views(), augmenter=lambda v: v,
            evaluate=lambda m: {"top1": 0.0, "top5": 0.0}, run_dir=tmp_path, device=CPU)
    assert not (tmp_path / "last.pt").exists()  # nothing half-written


def test_eval_of_a_saved_student_matches_the_run(tiny_recipe, tmp_path):
    """`aip eval` (evaluate_checkpoint) reproduces the accuracy the run reported for its final weights."""
    from aip.run import evaluate_checkpoint

    recipe = R.load(tiny_recipe, ["train.epochs=2"])
    train_teacher(recipe, device=CPU)
    metrics = run(recipe, out=tmp_path / "run", device=CPU)
    acc = evaluate_checkpoint(recipe, tmp_path / "run" / "last.pt", device=CPU)
    assert acc["top1"] == pytest.approx(metrics["student"]["top1"]) and acc["n"] == 100
    r = run_cli("eval", str(tiny_recipe), "--set", "train.epochs=2", "--checkpoint", str(tmp_path / "run" / "best.pt"),
                "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert f"top-1 {metrics['student_best']['top1']:.2f} %" in r.stdout
