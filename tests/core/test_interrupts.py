"""Interrupts outside the distillation loop: the teacher's training and evaluation, a second signal, SIGTERM.

The distillation loop's own stop and resume are tested in tests/core/test_e2e.py. The issue's case runs the CLI in a
subprocess on a small set with a teacher that is not cached and trains for many steps (so a signal always lands
in its training), signalled once a line it prints says where it is: its progress bar, refreshed on every step
(``AIP_PROGRESS_INTERVAL=0``), or its resume line; no test waits a fixed time. The other cases raise the signal
in this process at a chosen point (inside a step, at the teacher's evaluation), which makes them exact and fast.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import aip.recipe as R
from aip import checkpoint, interrupts
from aip.interrupts import Interrupted
from aip.registry import load_modality
from aip.teacher import fit_teacher, partial_path, teacher_path
from tests.conftest import ROOT, TINY_RECIPE, write_stripes_folder

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


#: a teacher of thousands of steps on the small set: a signal sent once it trains always lands in training
LONG = ["--set", "teacher.fit.epochs=2000", "--device", "cpu"]
TRAINING = r"teacher cnn: .*\|\s*([1-9]\d*)/\d+"  # its bar, past the first step


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    """The stripes set, small: 64 training images (2 teacher steps an epoch at batch 32), 40 test images."""
    return write_stripes_folder(tmp_path_factory.mktemp("small"), train_per_class=16, test_per_class=10)


@pytest.fixture
def small_recipe(tmp_path, small_root) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(TINY_RECIPE.format(root=small_root.as_posix(), epochs=1))
    return path


def _partial(recipe_path, args: list[str]) -> tuple[dict, R.Recipe]:
    """The interrupted teacher's checkpoint of ``recipe_path`` with the ``--set`` of ``args`` (in this test's
    AIP_CACHE)."""
    recipe = R.load(recipe_path, [a for prev, a in zip(args, args[1:]) if prev == "--set"])
    test = load_modality(recipe.modality).data(recipe, split="test", train=False)
    return checkpoint.load(partial_path(teacher_path(recipe, test))), recipe


def test_ctrl_c_in_teacher_training_saves_it_and_the_same_command_resumes(small_recipe, tmp_path, isolated_cache):
    """The issue's case (`timeout -s INT 12 aip run RECIPE_WITH_UNCACHED_TEACHER` exited 130 silently, and the
    teacher then trained from zero): one line naming the step, exit 130, a teacher checkpoint at that step, no run
    folder left; the same command resumes the teacher there (and SIGTERM then stops it the same way, 143)."""
    env = {"AIP_CACHE": str(isolated_cache)}
    out = tmp_path / "run"
    proc = _start("run", str(small_recipe), "--out", str(out), *LONG, env=env)
    _, m = _wait_for(proc, TRAINING)
    proc.send_signal(signal.SIGINT)
    code, rest = _finish(proc)
    assert code == 130, rest
    line = _last_line(rest)
    step = int(re.fullmatch(r"interrupted during teacher training at step (\d+); run the same command to resume",
                            line).group(1))
    assert step >= int(m.group(1)) and "Traceback" not in rest
    saved, _ = _partial(small_recipe, LONG)
    assert saved["step"] == step and set(saved) >= {"model", "optimizer", "scheduler", "rng", "epoch_rng"}
    assert not out.exists()  # a run stopped before its first checkpoint leaves no folder
    assert not list((isolated_cache / "teachers").glob("*.tmp"))

    again = _start("run", str(small_recipe), "--out", str(out), *LONG, env=env)
    _, m = _wait_for(again, r"teacher: resuming the interrupted training at step (\d+)/(\d+)")
    assert int(m.group(1)) == step  # not from zero
    while int(_wait_for(again, TRAINING)[1].group(1)) <= step:  # its bar starts at the step: wait for a new one
        pass
    again.send_signal(signal.SIGTERM)
    code, rest = _finish(again)
    assert code == 143, rest
    later = int(re.fullmatch(r"interrupted during teacher training at step (\d+); run the same command to resume",
                             _last_line(rest)).group(1))
    assert later > step and _partial(small_recipe, LONG)[0]["step"] == later


def test_a_second_signal_stops_at_once(small_recipe, tmp_path, monkeypatch):
    """Two signals in one step (Ctrl-C, then SIGTERM before the step ends): the second stops at once, as a
    KeyboardInterrupt that remembers its signal (the CLI then prints its one line and exits 143, as the test below
    checks for a stop outside the loop), and no checkpoint is written for the step it cut short."""
    import aip.teacher as teacher_mod

    recipe = R.load(small_recipe)
    real = teacher_mod.train_step

    def step_then_two_signals(**kwargs):
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGTERM)
        return real(**kwargs)

    monkeypatch.setattr(teacher_mod, "train_step", step_then_two_signals)
    monkeypatch.setattr(interrupts, "received", 0)
    path = tmp_path / "t.safetensors"
    with pytest.raises(KeyboardInterrupt):
        fit_teacher(recipe, load_modality(recipe.modality), device=CPU, path=path)
    assert interrupts.exit_code() == 143
    assert not partial_path(path).exists() and not path.exists()


def test_sigterm_in_the_teacher_evaluation_keeps_the_trained_teacher(small_recipe, isolated_cache, monkeypatch,
                                                                     capsys):
    """SIGTERM while the trained teacher is measured (outside any training loop; it used to kill at once), through
    cli.main in this process: one line, exit 143, the trained weights kept; the same command then only measures
    and caches it."""
    import aip.teacher as teacher_mod
    from aip.evaluate import Evaluator
    from tests.conftest import cli_main

    real, calls, steps = Evaluator.evaluate, [], []
    real_step = teacher_mod.train_step

    def signalled(self, model, **kwargs):
        calls.append(kwargs.get("desc"))
        if len(calls) == 1:
            signal.raise_signal(signal.SIGTERM)  # cli.main's handler: at once, as a KeyboardInterrupt
        return real(self, model, **kwargs)

    monkeypatch.setattr(Evaluator, "evaluate", signalled)
    monkeypatch.setattr(teacher_mod, "train_step", lambda **kw: steps.append(1) or real_step(**kw))
    monkeypatch.setattr(interrupts, "received", 0)
    quick = ["--set", "teacher.fit.epochs=1", "--device", "cpu"]  # 2 steps
    code, err = cli_main(monkeypatch, capsys, "teacher", str(small_recipe), *quick)
    assert code == 143 and calls == ["teacher eval"], err
    assert _last_line(err) == INTERRUPTED and "Traceback" not in err
    saved, recipe = _partial(small_recipe, quick)
    assert saved["step"] == saved["total"] == 2 == len(steps)
    code, err = cli_main(monkeypatch, capsys, "teacher", str(small_recipe), *quick)
    assert code == 0, err
    test = load_modality("image").data(recipe, split="test", train=False)
    assert teacher_path(recipe, test).is_file() and not partial_path(teacher_path(recipe, test)).exists()
    assert calls[1] == "teacher eval" and len(steps) == 2  # measured again, not trained again (at step 2 of 2)


@pytest.fixture(scope="module")
def straight(small_root, tmp_path_factory):
    """The small recipe's teacher (2 epochs of 2 steps), trained without a stop."""
    folder = tmp_path_factory.mktemp("straight")
    recipe_path = folder / "small.toml"
    recipe_path.write_text(TINY_RECIPE.format(root=small_root.as_posix(), epochs=1))
    recipe = R.load(recipe_path, ["teacher.fit.epochs=2"])
    return recipe, fit_teacher(recipe, load_modality(recipe.modality), device=CPU, path=folder / "t.safetensors")


@pytest.mark.parametrize("stop_at", [1, 2])  # inside the first epoch (2 steps), and at its end
def test_a_resumed_teacher_is_bit_identical_to_an_uninterrupted_one(straight, tmp_path, monkeypatch, stop_at):
    """In-process: a SIGINT during step ``stop_at`` stops after it with its checkpoint; the next call resumes from
    it to exactly the weights of a teacher trained without a stop (eval.workers = 0)."""
    import aip.teacher as teacher_mod

    recipe, uninterrupted = straight
    modality = load_modality(recipe.modality)
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
    assert len(steps) == 4  # 2 epochs of 2 steps in all: none repeated, none skipped
    a, b = uninterrupted.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert path.is_file() and not partial_path(path).exists()
