"""The measurement scripts: hostile_run's verdicts and its crafted PNG, teacher_budget's argument check."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import ROOT


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def done(code: int, err: str) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["aip"], code, "", err)


def test_hostile_run_judges_each_promise(tmp_path):
    h = script("hostile_run")
    case = h.Case("x", ["check"], 2, guard=["mine.txt"])
    mine = tmp_path / "mine.txt"
    mine.write_text("mine")
    before = {"mine.txt": h.digest(mine)}
    assert h.judge(case, done(2, "error: bad key\n"), before, tmp_path) == "clean"
    assert h.judge(case, done(1, "Traceback (most recent call last):\n...\n"), before, tmp_path) == "traceback"
    assert h.judge(case, done(0, ""), before, tmp_path) == "exit 0 (accepted)"
    assert h.judge(case, done(2, "error: a\nerror: b\n"), before, tmp_path) == "2 error lines"
    assert h.judge(case, done(1, "error: bad key\n"), before, tmp_path) == "one line, exit 1 (expected 2)"
    mine.write_text("changed")
    assert h.judge(case, done(2, "error: bad key\n"), before, tmp_path) == "user file changed: mine.txt"


def test_hostile_run_png_header_claims_its_size():
    h = script("hostile_run")
    with Image.open(io.BytesIO(h.png_bytes(3, 2))) as img:
        assert img.size == (3, 2) and img.mode == "L"


@pytest.mark.parametrize("argv", [[], ["recipes/fashion-mnist.toml"], ["recipes/fashion-mnist.toml", "noname"]])
def test_teacher_budget_refuses_arguments_without_variants(argv, capsys):
    assert script("teacher_budget").main(argv) == 2
    assert "NAME=OVERRIDE" in capsys.readouterr().err
