"""Progress bars in a batch job's log: a few whole lines, not hundreds of carriage-return redraws; switched off by
AIP_PROGRESS=0 or TQDM_DISABLE=1."""

import ast
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli

LOOP = ("import time\nfrom aip.progress import tqdm\n"
        "for _ in tqdm(range(400), desc='work'):\n    time.sleep(0.004)\n"
        "bar = tqdm(total=400, desc='manual')\nfor _ in range(400):\n    time.sleep(0.002)\n    bar.update(1)\n"
        "bar.close()\n")


def run_loop(tmp_path, **env):
    log = tmp_path / "job.log"
    full = {k: v for k, v in os.environ.items() if k not in ("AIP_PROGRESS", "TQDM_DISABLE", "AIP_PROGRESS_INTERVAL")}
    with open(log, "w") as f:  # stderr to a file, as a batch scheduler does
        p = subprocess.run([sys.executable, "-c", LOOP], stderr=f, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                           env={**full, **env})
    assert p.returncode == 0
    return log.read_bytes().decode()  # bytes: text mode would turn each \r into a line end


def test_bars_in_a_log_file_are_a_few_lines(tmp_path):
    text = run_loop(tmp_path)
    assert "\r" not in text
    lines = text.splitlines()
    assert 2 <= len(lines) <= 6, lines  # each bar: its start and its end (at most one refresh a minute between)
    assert any("work" in line and "400/400" in line for line in lines)
    assert any("manual" in line and "400/400" in line for line in lines)


def test_log_interval_is_configurable_and_each_refresh_is_a_line(tmp_path):
    lines = run_loop(tmp_path, AIP_PROGRESS_INTERVAL="0").splitlines()
    assert len(lines) > 6 and all(line.startswith(("work", "manual")) for line in lines)


@pytest.mark.parametrize("env", [{"AIP_PROGRESS": "0"}, {"AIP_PROGRESS": "off"}, {"TQDM_DISABLE": "1"}])
def test_bars_can_be_switched_off(tmp_path, env):
    assert run_loop(tmp_path, **env) == ""


def test_every_bar_of_aip_goes_through_aip_progress():
    """tqdm is imported in aip.progress only, so the policy holds for every bar (trainer, teacher, eval, ...)."""
    offenders = []
    for top in ("aip", "modalities"):
        for path in (ROOT / top).rglob("*.py"):
            if path.name == "progress.py" and path.parent.name == "aip":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                if any(n == "tqdm" or n.startswith("tqdm.") for n in names):
                    offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


@pytest.mark.slow
def test_teacher_training_log_has_no_redraws(tiny_recipe, tmp_path):
    r = run_cli("teacher", str(tiny_recipe), "--device", "cpu", "--set", "teacher.fit.epochs=2",
                env={"AIP_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    # run_cli captures stderr through a pipe (not a terminal, as in a batch job), in text mode: \r becomes \n
    lines = r.stderr.splitlines()
    bar_lines = [line for line in lines if line.startswith("teacher cnn:")]
    assert 1 <= len(bar_lines) <= 3, lines
