"""Data parallelism for real: ``torchrun --nproc-per-node 2 -m aip run`` on CPU (gloo), against one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aip import checkpoint
from aip import recipe as R
from tests.conftest import ROOT, TINY_RECIPE, run_cli

pytestmark = pytest.mark.slow


def torchrun(*args: str, nproc: int = 2, timeout: float | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "aip", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def recipe4(tmp_path: Path, stripes_root: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_RECIPE.format(root=stripes_root.as_posix(), epochs=4))
    return path


def test_two_processes_learn_like_one_and_write_once(tiny_recipe, tmp_path):
    recipe6 = tiny_recipe  # 6 epochs
    assert run_cli("teacher", str(recipe6), "--device", "cpu").returncode == 0  # cached: both runs share it
    one, two = tmp_path / "one", tmp_path / "two"
    single = run_cli("run", str(recipe6), "--out", str(one), "--device", "cpu")
    assert single.returncode == 0, single.stderr[-2000:]
    # half the batch per process: the same effective batch, so the same steps and schedule as one process
    ddp = torchrun("run", str(recipe6), "--out", str(two), "--device", "cpu", "--set", "train.batch_size=32")
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("student top-1") == 1  # only rank 0 prints the summary

    m1, m2 = json.loads((one / "metrics.json").read_text()), json.loads((two / "metrics.json").read_text())
    recipe = R.load(recipe6, ["train.batch_size=32"])
    assert m1["processes"] == 1 and m1["effective_batch"] == 64
    assert m2["processes"] == 2 and m2["effective_batch"] == 2 * recipe.train.batch_size == 64
    assert m2["steps"] == recipe.train.epochs * recipe.train.steps_per_epoch_at(2) == m1["steps"]
    assert m2["lr"] == recipe.train.lr  # lr_scaling = "none" by default
    # evaluation is sharded, but the counts are summed: every test image once
    assert m2["eval_items"] == m1["eval_items"] == 100
    # the log is written once (rank 0), one row per epoch, and the loss falls as in one process
    assert [r["epoch"] for r in rows(two)] == [1, 2, 3, 4, 5, 6]
    assert rows(two)[-1]["train_loss_epoch"] < rows(two)[0]["train_loss_epoch"]
    assert m2["student"]["top1"] > 60.0 and m1["student"]["top1"] > 60.0, (m1, m2)  # chance is 25 %
    # the checkpoint holds both ranks' RNG states and loads into a plain single-process student
    last = checkpoint.load(two / "last.pt")
    assert last["world"] == 2 and len(last["rng_per_rank"]) == 2
    assert not torch.equal(last["rng_per_rank"][0]["torch"], last["rng_per_rank"][1]["torch"])
    ev = run_cli("eval", str(recipe6), "--checkpoint", str(two / "best.pt"), "--device", "cpu")
    assert ev.returncode == 0 and "top-1" in ev.stdout, ev.stderr


def test_two_process_run_resumes_to_the_same_weights(recipe4, tmp_path):
    assert run_cli("teacher", str(recipe4), "--device", "cpu").returncode == 0
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert torchrun("run", str(recipe4), "--out", str(straight), "--device", "cpu").returncode == 0
    part = torchrun("run", str(recipe4), "--out", str(resumed), "--device", "cpu", "--stop-after-epochs", "2")
    assert part.returncode == 0, part.stderr[-3000:]
    assert "stopped early" in part.stdout
    assert [r["epoch"] for r in rows(resumed)] == [1, 2]
    done = torchrun("run", str(recipe4), "--out", str(resumed), "--device", "cpu")
    assert done.returncode == 0, done.stderr[-3000:]
    assert [r["epoch"] for r in rows(resumed)] == [1, 2, 3, 4]
    a, b = checkpoint.load(straight / "last.pt"), checkpoint.load(resumed / "last.pt")
    for k, v in a["student"].items():
        assert torch.equal(v, b["student"][k]), k  # every rank's RNG, the optimiser and scheduler restored
    # a different number of processes cannot continue it: one line, exit 2, checkpoint untouched
    again = run_cli("run", str(recipe4), "--out", str(resumed), "--device", "cpu")
    assert again.returncode == 2 and "resume it with the same number of processes" in again.stderr
    assert "Traceback" not in again.stderr
    assert checkpoint.load(resumed / "last.pt")["state"]["step"] == b["state"]["step"]
