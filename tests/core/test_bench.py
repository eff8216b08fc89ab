"""``aip bench``: every stage is timed, the data share and peak memory are reported, the reference runs."""

from __future__ import annotations

import re

import pytest
import torch

from aip import recipe as R
from aip.bench import BenchResult, Stage, bench
from tests.conftest import run_cli


def test_data_share_is_data_time_over_step_time():
    r = BenchResult(device="cpu", recipe="x", shape=(3, 8, 8), batch=4, pool=1, stages=[
        Stage("source + augment", 0.01, 4), Stage("teacher forward", 0.02, 4),
        Stage("student forward + backward + step", 0.03, 4), Stage("full distillation step", 0.2, 4)])
    assert r.data_share == pytest.approx(0.05)
    assert r.stage("teacher forward").per_second == pytest.approx(200.0)
    assert "| share of the step producing data | 5.0 % |" in r.table()
    assert r.data_overhead is None
    r.stages.append(Stage("step on a fixed batch", 0.19, 4))
    assert r.data_overhead == pytest.approx(0.05) and "| time the data adds to the step" in r.table()


def test_bench_times_the_recipe_step_and_the_reference_pipeline(tiny_recipe):
    result = bench(R.load(tiny_recipe), device=torch.device("cpu"), steps=1, warmup=0, vs_reference=True,
                   workers=0)
    assert [s.name for s in result.stages] == ["source + augment", "teacher forward",
                                               "student forward + backward + step", "full distillation step",
                                               "step on a fixed batch"]
    assert result.shape == (3, 24, 24) and result.batch == 64 and result.pool == 2
    assert result.stage("source + augment").samples == 128 and all(s.seconds > 0 for s in result.stages)
    assert 0 < result.data_share < 5 and result.peak_memory_bytes > 0
    full, fixed = result.stage("full distillation step").seconds, result.stage("step on a fixed batch").seconds
    assert result.data_overhead == pytest.approx(max(0.0, full - fixed) / full)
    assert result.reference["views_per_second"] > 0


def test_cli_bench_prints_the_table(tiny_recipe):
    res = run_cli("bench", str(tiny_recipe), "--device", "cpu", "--steps", "1", "--warmup", "0",
                  "--set", "train.batch_size=16")
    assert res.returncode == 0, res.stderr
    assert re.search(r"\| full distillation step \(16 per step\) \| [\d,.]+ \| [\d,]+ \|", res.stdout), res.stdout
    assert "share of the step producing data" in res.stdout and "peak memory" in res.stdout
    bad = run_cli("bench", str(tiny_recipe), "--steps", "0")
    assert bad.returncode == 2


def test_profile_lists_the_ops_of_the_full_step(tiny_recipe):
    result = bench(R.load(tiny_recipe, ["train.batch_size=16"]), device=torch.device("cpu"), steps=1, warmup=0,
                   profile=1)
    assert "Self CPU" in result.profile and "aten::" in result.profile
    assert "# profile of the full distillation step" in result.table()
    assert bench(R.load(tiny_recipe, ["train.batch_size=16"]), device=torch.device("cpu"), steps=1,
                 warmup=0).profile == ""


def test_projection_turns_the_step_time_into_the_schedule_time():
    from aip.bench import Projection

    p = Projection("distillation", steps=1000 * 98, seconds=0.25, processes=1)  # CIFAR: 1,000 epochs of 98 steps
    assert p.total_seconds == pytest.approx(24_500.0)
    assert p.line() == ("this recipe's distillation: about 6.8 hours on this device (1 process; 98,000 steps x "
                        "250.0 ms)")
    short = Projection("teacher training", steps=120, seconds=0.5, processes=8)
    assert short.line().startswith("this recipe's teacher training: about 1.0 minutes on this device (8 processes")
    r = BenchResult(device="cpu", recipe="x", shape=(3, 8, 8), batch=4, pool=1, projections=[p, short], stages=[
        Stage("source + augment", 0.01, 4), Stage("full distillation step", 0.2, 4)])
    assert r.table().endswith(short.line())


def test_bench_projects_the_recipe_schedule_for_n_processes(tiny_recipe):
    recipe = R.load(tiny_recipe)
    result = bench(recipe, device=torch.device("cpu"), steps=1, warmup=0, processes=4)
    full = result.stage("full distillation step").seconds
    one, four = result.projections[0], result.projections[1]
    assert (one.processes, four.processes) == (1, 4)
    assert one.steps == recipe.train.epochs * recipe.train.steps_per_epoch_at(1) and one.seconds == full
    assert four.steps == recipe.train.epochs * recipe.train.steps_per_epoch_at(4)
    teacher = result.projections[2]  # the tiny recipe trains its teacher: 4 epochs of 240 // 32 steps
    assert teacher.what == "teacher training" and teacher.steps == 4 * (240 // 32)


def test_bench_reports_kernel_time_and_page_faults_of_the_step(tiny_recipe):
    result = bench(R.load(tiny_recipe), device=torch.device("cpu"), steps=1, warmup=1)
    assert result.system_share is not None and 0.0 <= result.system_share <= 1.0
    assert result.faults_per_step is not None and result.faults_per_step >= 0
    assert "minor page faults per step" in result.table() and "kernel time, share" in result.table()


def test_glibc_keeps_freed_memory_unless_the_user_chose(monkeypatch):
    import platform

    from aip import allocator

    monkeypatch.setenv("MALLOC_TOP_PAD_", "0")
    assert allocator.keep_freed_memory() is False  # the user's own glibc setting wins
    monkeypatch.delenv("MALLOC_TOP_PAD_")
    monkeypatch.setenv("AIP_MALLOC", "default")
    assert allocator.keep_freed_memory() is False
    monkeypatch.delenv("AIP_MALLOC")
    if platform.libc_ver()[0] == "glibc":
        assert allocator.keep_freed_memory() is True
