"""Interrupts outside the distillation loop: the teacher's training and evaluation, a second signal, SIGTERM.

The distillation loop's own stop and resume are tested in tests/test_e2e.py. Here a teacher that is not cached
trains for many steps (so a signal always lands in its training), and each subprocess is signalled once a line
it prints says where it is: its progress bar, refreshed on every step (``AIP_PROGRESS_INTERVAL=0``), or its
resume line; no test waits a fixed time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest
import torch

import aip.recipe as R
from aip import checkpoint
from aip.interrupts import Interrupted
from aip.registry import load_modality
from aip.teacher import fit_teacher, partial_path, teacher_path
from tests.conftest import ROOT

CPU = torch.device("cpu")
INTERRUPTED = "interrupted: the last checkpoint is kept; run the same command to resume"


def _start(*args: str, env: dict[str, str]) -> subprocess.Popen:
    """``python -m aip ARGS``, stdout and stderr as one stream read line by line, bars refreshed every step."""
    return subprocess.Popen([sys.executable, "-m", "aip", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1, cwd=ROOT, env={**os.environ, **env, "AIP_PROGRESS_INTERVAL": "0"})


def _wait_for(proc: subprocess.Popen, pattern: str) -> tuple[str, re.Match]:
    """Read the process's output until a line matches ``pattern`` (an event, not a sleep)."""
    seen = []
    for line in iter(proc.stdout.readline, ""):
        seen.append(line)
        if m := re.search(pattern, line):
            return "".join(seen), m
    proc.wait()
    raise AssertionError(f"the process ended ({proc.returncode}) without printing {pattern!r}:\n"
                         f"{''.join(seen)[-3000:]}")


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    rest, _ = proc.communicate()
    return proc.returncode, rest


def _last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


#: a teacher of thousands of steps on the stripes set: a signal sent once it trains always lands in training
LONG = ["--set", "teacher.fit.epochs=400", "--device", "cpu"]
TRAINING = r"teacher cnn: .*\|\s*([1-9]\d*)/\d+"  # its bar, past the first step


def _partial(recipe_path, args: list[str]) -> tuple[dict, R.Recipe]:
    """The interrupted teacher's checkpoint of ``recipe_path`` with the ``--set`` of ``args`` (in this test's
    AIP_CACHE)."""
    recipe = R.load(recipe_path, [a for prev, a in zip(args, args[1:]) if prev == "--set"])
    test = load_modality(recipe.modality).data(recipe, split="test", train=False)
    return checkpoint.load(partial_path(teacher_path(recipe, test))), recipe


def test_ctrl_c_in_teacher_training_saves_it_and_the_same_command_resumes(tiny_recipe, tmp_path, isolated_cache):
    """The issue's case (`timeout -s INT 12 aip run RECIPE_WITH_UNCACHED_TEACHER` exited 130 silently, and the
    teacher then trained from zero): one line naming the step, exit 130, a teacher checkpoint at that step, no run
    folder left; the same command resumes the teacher there (and SIGTERM then stops it the same way, 143)."""
    env = {"AIP_CACHE": str(isolated_cache)}
    out = tmp_path / "run"
    proc = _start("run", str(tiny_recipe), "--out", str(out), *LONG, env=env)
    _, m = _wait_for(proc, TRAINING)
    proc.send_signal(signal.SIGINT)
    code, rest = _finish(proc)
    assert code == 130, rest
    line = _last_line(rest)
    step = int(re.fullmatch(r"interrupted during teacher training at step (\d+); run the same command to resume",
                            line).group(1))
    assert step >= int(m.group(1)) and "Traceback" not in rest
    saved, _ = _partial(tiny_recipe, LONG)
    assert saved["step"] == step and set(saved) >= {"model", "optimizer", "scheduler", "rng", "epoch_rng"}
    assert not out.exists()  # a run stopped before its first checkpoint leaves no folder
    assert not list((isolated_cache / "teachers").glob("*.tmp"))

    again = _start("run", str(tiny_recipe), "--out", str(out), *LONG, env=env)
    _, m = _wait_for(again, r"teacher: resuming the interrupted training at step (\d+)/(\d+)")
    assert int(m.group(1)) == step  # not from zero
    while int(_wait_for(again, TRAINING)[1].group(1)) <= step:  # its bar starts at the step: wait for a new one
        pass
    again.send_signal(signal.SIGTERM)
    code, rest = _finish(again)
    assert code == 143, rest
    later = int(re.fullmatch(r"interrupted during teacher training at step (\d+); run the same command to resume",
                             _last_line(rest)).group(1))
    assert later > step and _partial(tiny_recipe, LONG)[0]["step"] == later


def test_a_second_signal_stops_at_once_with_one_line(tiny_recipe, isolated_cache):
    """Two signals at once (Ctrl-C, then SIGTERM before the step ends): the second stops at once, with the one
    line and its own exit code (143), and no traceback."""
    proc = _start("teacher", str(tiny_recipe), *LONG, env={"AIP_CACHE": str(isolated_cache)})
    _wait_for(proc, TRAINING)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    code, rest = _finish(proc)
    assert code == 143, rest
    assert _last_line(rest) == INTERRUPTED and "Traceback" not in rest


def test_sigterm_in_the_teacher_evaluation_keeps_the_trained_teacher(tiny_recipe, isolated_cache):
    """SIGTERM while the trained teacher is measured (outside any training loop; it used to kill at once): one
    line, exit 143, the trained weights kept; the same command then only measures and caches it."""
    env = {"AIP_CACHE": str(isolated_cache)}
    quick = ["--set", "teacher.fit.epochs=1", "--set", "eval.batch_size=1", "--device", "cpu"]  # 7 steps, 100 evals
    proc = _start("teacher", str(tiny_recipe), *quick, env=env)
    _wait_for(proc, r"teacher eval")
    proc.send_signal(signal.SIGTERM)
    code, rest = _finish(proc)
    assert code == 143, rest
    assert _last_line(rest) == INTERRUPTED and "Traceback" not in rest
    saved, recipe = _partial(tiny_recipe, quick)
    assert saved["step"] == saved["total"] == 7
    again = subprocess.run([sys.executable, "-m", "aip", "teacher", str(tiny_recipe), *quick], capture_output=True,
                           text=True, cwd=ROOT, env={**os.environ, **env})
    assert again.returncode == 0, again.stderr
    assert "resuming the interrupted training at step 7/7" in again.stdout
    test = load_modality("image").data(recipe, split="test", train=False)
    assert teacher_path(recipe, test).is_file() and not partial_path(teacher_path(recipe, test)).exists()


@pytest.mark.parametrize("stop_at", [3, 7])  # inside the first epoch (7 steps), and at its end
def test_a_resumed_teacher_is_bit_identical_to_an_uninterrupted_one(tiny_recipe, tmp_path, monkeypatch, stop_at):
    """In-process: a SIGINT during step ``stop_at`` stops after it with its checkpoint; the next call resumes from
    it to exactly the weights of a teacher trained without a stop (eval.workers = 0)."""
    import aip.teacher as teacher_mod

    recipe = R.load(tiny_recipe, ["teacher.fit.epochs=2"])
    modality = load_modality(recipe.modality)
    straight = fit_teacher(recipe, modality, device=CPU, path=tmp_path / "straight.safetensors")

    real, steps = teacher_mod.train_step, []

    def step_then_signal(**kwargs):
        losses = real(**kwargs)
        steps.append(1)
        if len(steps) == stop_at:
            signal.raise_signal(signal.SIGINT)  # handled at once by deferred_stops: a flag, checked after the step
        return losses

    monkeypatch.setattr(teacher_mod, "train_step", step_then_signal)
    path = tmp_path / "stopped.safetensors"
    with pytest.raises(Interrupted) as e:
        fit_teacher(recipe, modality, device=CPU, path=path)
    assert e.value.step == stop_at and e.value.exit_code == 130
    assert str(e.value) == f"interrupted during teacher training at step {stop_at}; run the same command to resume"
    assert checkpoint.load(partial_path(path))["step"] == stop_at and not path.exists()
    resumed = fit_teacher(recipe, modality, device=CPU, path=path)
    assert len(steps) == 14  # 2 epochs of 7 steps in all: none repeated, none skipped
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert path.is_file() and not partial_path(path).exists()
