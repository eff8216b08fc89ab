"""The reproduction page (aip.reproduction): rows from fixture run folders, bench records and paper numbers; the
committed docs/reproduction.md is what the generator makes of the committed inputs; aip bench --json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from aip import reproduction as rp

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "tests" / "fixtures" / "reproduction"


def _rows() -> dict[str, rp.Row]:
    return {r.recipe: r for r in rp.rows(FIX, root=FIX)}


def test_rows_summarise_seeds_last_and_best() -> None:
    toy = _rows()["toy"]
    m = toy.measured
    assert m is not None and m.runs == ["folders/toy_seed-0", "folders/toy_seed-1"]
    assert m.last[0] == pytest.approx(72.0) and m.last[1] == pytest.approx(math.sqrt(8.0))  # sample std
    assert m.best[0] == pytest.approx(74.0)
    assert m.ratio[0] == pytest.approx(90.0) and m.views == 6400
    # provenance.json wins over the row's machine; the row's machine fills in for the run without one
    assert m.machines == ["NVIDIA H100 80GB HBM3 (torch 2.9.1)", "a CPU"]
    assert m.teacher_sha256 == ["ab" * 32]


def test_status_logic() -> None:
    rows = _rows()
    assert rows["toy"].status == rp.PAPER_SCALE  # 6,400 views >= paper_views
    assert rows["toy-small"].status == rp.PROXY  # one seed, fewer views than paper_views
    assert rows["toy-small"].bench["recipe"] == "toy"  # bench_recipe
    assert rows["proj"].status == rp.PROJECTED and rows["proj"].measured is None
    assert rows["none"].status == rp.NONE and rows["none"].bench is None
    assert rp.status(measured=rows["toy"].measured, bench=None, paper_views=6400, proxy=True) == rp.PROXY


def test_rendered_page() -> None:
    page = rp.render(rp.rows(FIX, root=FIX), command="cmd")
    toy = next(line for line in page.splitlines() if line.startswith("| `toy` |"))
    cells = [c.strip() for c in toy.strip("|").split("|")]
    assert cells[2] == "75.50 (teacher 81.00)"
    assert cells[3] == "72.00 ± 2.83 (74.00 ± 2.83)"
    assert cells[5] == "2, 6,400"
    assert cells[7:9] == ["2.0 h", "15.0 min"]
    assert "sha256 `abababababababab`" in cells[10] and cells[-1] == rp.PAPER_SCALE
    proj = next(line for line in page.splitlines() if line.startswith("| `proj` |"))
    assert "2.0 min" in proj and "(transcribed)" in proj and "| – | – |" in proj  # no 8-GPU projection
    assert "transcribed from docs/benchmarks.md" in page
    assert "has not run yet" not in page  # a run folder measured on a GPU


def test_no_gpu_run_says_so(tmp_path: Path) -> None:
    (tmp_path / "paper.toml").write_text((FIX / "paper.toml").read_text().replace('"folders/toy_seed-*"', '"x"'))
    page = rp.render(rp.rows(tmp_path, root=FIX), command="cmd")
    assert "has not run yet" in page


def test_bad_inputs_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert rp.main(["--inputs", str(tmp_path), "--out", str(tmp_path / "p.md")]) == 1
    assert "paper.toml" in capsys.readouterr().err and not (tmp_path / "p.md").exists()
    (tmp_path / "paper.toml").write_text('[[row]]\nrecipe = "x"\n')
    assert rp.main(["--inputs", str(tmp_path), "--out", str(tmp_path / "p.md")]) == 1
    assert "row 1 lacks dataset" in capsys.readouterr().err


def test_committed_page_is_generated_from_committed_inputs() -> None:
    page = (REPO / "docs" / "reproduction.md").read_text()
    assert page == rp.generate(inputs=REPO / "docs" / "reproduction", root=REPO), (
        "docs/reproduction.md is stale: run python -m aip.reproduction")


def test_committed_inputs_cover_every_paper_recipe() -> None:
    rows = {r.recipe: r for r in rp.rows(REPO / "docs" / "reproduction", root=REPO)}
    paper = ["cifar10", "cifar100", "stl10", "imagenet100", "flowers102", "places365", "pets", "imagenet",
             "imagenet-r50x2", "kinetics400", "ucf101", "speechcommands", "speechcommands35", "musan", "voxforge",
             "librispeech"]
    offline = ["fashion-mnist", "spoken-keywords", "motion-objects", "motion", "sound-types", "spoken-languages"]
    for name in paper + offline:
        assert name in rows and (REPO / "recipes" / f"{name}.toml").is_file(), name
    assert rows["fashion-mnist"].measured is not None and rows["fashion-mnist"].measured.last[0] > 70
    assert rows["cifar10"].bench is not None and rows["cifar10"].bench["transcribed_from"]


def test_bench_json_writes_a_record(tmp_path: Path, tiny_recipe: Path) -> None:
    from conftest import run_cli

    out = tmp_path / "rec.json"
    p = run_cli("bench", str(tiny_recipe), "--device", "cpu", "--steps", "1", "--warmup", "0", "--processes", "8",
                "--json", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    rec = json.loads(out.read_text())
    assert rec["kind"] == rp.RECORD_KIND and rec["command"].startswith("aip bench")
    assert [p["processes"] for p in rec["projections"] if p["what"] == "distillation"] == [1, 8]
    assert rp.read_bench_records(tmp_path)[0]["file"] == "rec.json"
