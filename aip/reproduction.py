"""The reproduction page: per recipe, the paper's number beside what aip measured and what it projects.

``docs/reproduction.md`` is generated, never typed: ``python -m aip.reproduction`` reads

- the paper's numbers (``INPUTS/paper.toml``: one ``[[row]]`` per recipe, each with the section of the paper it
  comes from, the globs of the run folders that measure it, and where the teacher comes from),
- run folders (``metrics.json``, ``recipe.toml``, and an optional ``provenance.json`` with the machine, the
  date, the command and the teacher checkpoint's sha256; a sweep's seeds are one row's runs), and
- bench records (``INPUTS/bench/*.json``, written by ``aip bench --json`` or transcribed once from a
  measurement in docs/benchmarks.md, marked so),

and writes one table. Seeds are summarised as mean ± sample std of the LAST evaluation and of the BEST one
(best alone flatters). A row's status: *measured at the paper's scale* (its runs saw at least the row's
``paper_views``), *measured on a proxy* (runs at a smaller scale, or of a stand-in recipe), *projected only*
(bench records and no runs) or *not measured*.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aip.errors import AipError
from aip.recipe import tomllib
from aip.report import mean_std

RECORD_KIND = "aip-bench-record"
PROVENANCE = "provenance.json"
PAGE = Path("docs/reproduction.md")
INPUTS = Path("docs/reproduction")

PAPER_SCALE, PROXY, PROJECTED, NONE = ("measured at the paper's scale", "measured on a proxy", "projected only",
                                       "not measured")


# ------------------------------------------------------------------------------------------- bench records
def bench_record(result: Any, *, recipe: Any, command: str, date: str | None = None) -> dict[str, Any]:
    """A bench record (JSON-ready) of an :class:`aip.bench.BenchResult` for ``recipe``."""
    full = result.stage("full distillation step")
    return {
        "kind": RECORD_KIND, "version": 1, "recipe": recipe.name, "device": result.device,
        "date": date or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "command": command,
        "batch": result.batch, "view_pool": result.pool,
        "step_seconds": full.seconds, "samples_per_second": full.per_second,
        "stages": {s.name: s.seconds for s in result.stages},
        "projections": [{"what": p.what, "processes": p.processes, "steps": p.steps, "step_seconds": p.seconds,
                         "total_seconds": p.total_seconds} for p in result.projections],
    }


def write_bench_record(result: Any, path: Path, *, recipe: Any, command: str) -> None:
    from aip import files

    files.write_text(json.dumps(bench_record(result, recipe=recipe, command=command), indent=2) + "\n", Path(path))


def read_bench_records(folder: Path) -> list[dict[str, Any]]:
    """Every bench record in ``folder`` (``*.json`` of kind ``aip-bench-record``), by file name."""
    records = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise AipError(f"bench record {path} is not readable JSON ({e}); rewrite it with aip bench --json") from e
        if isinstance(data, dict) and data.get("kind") == RECORD_KIND:
            records.append({**data, "file": path.name})
    return records


# ------------------------------------------------------------------------------------------------ rows
@dataclass
class Measured:
    """A row's runs: seeds summarised."""

    runs: list[str]
    last: tuple[float, float]
    best: tuple[float, float]
    ratio: tuple[float, float]
    teacher: tuple[float, float]
    views: int
    machines: list[str]
    dates: list[str]
    teacher_sha256: list[str]


@dataclass
class Row:
    recipe: str
    dataset: str
    kind: str
    paper: float | None
    paper_teacher: float | None
    source: str
    teacher: str
    command: str
    measured: Measured | None
    bench: dict[str, Any] | None
    status: str
    notes: list[str] = field(default_factory=list)


def _num(d: Any, *keys: str) -> float | None:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return float(d) if isinstance(d, int | float) and not isinstance(d, bool) else None


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def measure(patterns: list[str], *, root: Path, default_machine: str = "", default_date: str = "") -> Measured | None:
    """The finished run folders matching ``patterns`` (globs under ``root``), their seeds summarised."""
    folders = sorted({Path(p) for pat in patterns for p in glob.glob(str(root / pat))
                      if (Path(p) / "metrics.json").is_file()})
    metrics = [(f, _read(f / "metrics.json"), _read(f / PROVENANCE)) for f in folders]
    metrics = [(f, m, p) for f, m, p in metrics if _num(m, "student", "top1") is not None]
    if not metrics:
        return None
    last = [_num(m, "student", "top1") or 0.0 for _, m, _ in metrics]
    best = [b if (b := _num(m, "student_best", "top1")) is not None else la for (_, m, _), la in zip(metrics, last)]
    views = [int((_num(m, "steps") or 0) * (_num(m, "effective_batch") or 0)) for _, m, _ in metrics]
    return Measured(
        runs=[f.relative_to(root).as_posix() for f, _, _ in metrics],
        last=mean_std(last), best=mean_std(best),
        ratio=mean_std([100 * r for _, m, _ in metrics if (r := _num(m, "ratio")) is not None]),
        teacher=mean_std([t for _, m, _ in metrics if (t := _num(m, "teacher", "top1")) is not None]),
        views=min(views),
        machines=sorted({p.get("machine") or default_machine for _, _, p in metrics} - {""}),
        dates=sorted({p.get("date") or default_date for _, _, p in metrics} - {""}),
        teacher_sha256=sorted({p["teacher_sha256"] for _, _, p in metrics if p.get("teacher_sha256")}))


def latest_bench(records: list[dict[str, Any]], recipe: str) -> dict[str, Any] | None:
    """The newest bench record of ``recipe`` (by its date, then its file name)."""
    mine = [r for r in records if r.get("recipe") == recipe]
    return max(mine, key=lambda r: (str(r.get("date", "")), r["file"])) if mine else None


def status(*, measured: Measured | None, bench: dict[str, Any] | None, paper_views: int | None,
           proxy: bool) -> str:
    if measured is not None:
        return PAPER_SCALE if paper_views and not proxy and measured.views >= paper_views else PROXY
    return PROJECTED if bench is not None else NONE


def rows(inputs: Path, *, root: Path) -> list[Row]:
    """The page's rows from ``inputs/paper.toml``, the run folders it names and ``inputs/bench/*.json``."""
    paper_file = Path(inputs) / "paper.toml"
    try:
        spec = tomllib.loads(paper_file.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise AipError(f"cannot read the paper's numbers {paper_file} ({e}); it lists one [[row]] per recipe") from e
    records = read_bench_records(Path(inputs) / "bench")
    out = []
    for i, r in enumerate(spec.get("row", [])):
        missing = [k for k in ("recipe", "dataset", "kind", "source", "teacher", "command") if k not in r]
        if missing:
            raise AipError(f"{paper_file}: row {i + 1} lacks {', '.join(missing)}")
        m = measure(list(r.get("runs", [])), root=root, default_machine=r.get("machine", ""),
                    default_date=r.get("date", ""))
        b = latest_bench(records, r.get("bench_recipe", r["recipe"]))
        out.append(Row(recipe=r["recipe"], dataset=r["dataset"], kind=r["kind"], paper=r.get("paper"),
                       paper_teacher=r.get("paper_teacher"), source=r["source"], teacher=r["teacher"],
                       command=r["command"], measured=m, bench=b,
                       status=status(measured=m, bench=b, paper_views=r.get("paper_views"),
                                     proxy=bool(r.get("proxy", False))),
                       notes=list(r.get("notes", []))))
    return out


# ------------------------------------------------------------------------------------------------ render
def _pm(ms: tuple[float, float]) -> str:
    mean, std = ms
    if math.isnan(mean):
        return "–"
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{seconds / 60:,.1f} min"


def _views(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1e5 else f"{n:,}"


def projection(bench: dict[str, Any] | None, processes: int) -> float | None:
    for p in (bench or {}).get("projections", []):
        if p.get("what") == "distillation" and p.get("processes") == processes:
            return _num(p, "total_seconds")
    return None


def render(table: list[Row], *, command: str) -> str:
    gpu_runs = [r for r in table if r.measured and any("cpu" not in m.lower() for m in r.measured.machines)]
    counts = {s: sum(r.status == s for r in table) for s in (PAPER_SCALE, PROXY, PROJECTED, NONE)}
    lines = [
        "# Reproduction: the paper's numbers beside aip's", "",
        f"Generated by `{command}` from the paper's numbers (`docs/reproduction/paper.toml`, each with its "
        "section of the paper), run folders (`metrics.json`, `recipe.toml`, `provenance.json`) and bench records "
        "(`docs/reproduction/bench/*.json`, written by `aip bench --json`); not typed by hand, and a test fails "
        "when this page differs from what the command makes of the committed inputs.", "",
        f"Of {len(table)} rows: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ". *Measured* figures "
        "come from run folders (seeds as mean ± sample std; *last* is the final evaluation, *best* the best one, "
        "shown for comparison only); *projected* times are a bench record's whole distillation schedule at its "
        "measured step (8 GPUs: 8 times fewer steps per process, data-parallel overhead not included), never a "
        "run.", "",
    ]
    if not gpu_runs:
        lines += ["**The GPU proof run (`scripts/gpu_proof.sh`, Fashion-MNIST at 10 M views) has not run yet**: "
                  "no run folder here was measured on a GPU, so no number of the paper's scale is measured; the "
                  "GPU rows below are projections.", ""]
    lines += [
        "| recipe | dataset | paper | aip: last (best), top-1 % | student / teacher % | seeds, views | measured on "
        "| 1 GPU | 8 GPUs | projected on | teacher | command | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        m, b = r.measured, r.bench
        paper = "–" if r.paper is None else f"{r.paper:.2f}"
        if r.paper_teacher is not None:
            paper += f" (teacher {r.paper_teacher:.2f})"
        teacher = r.teacher
        if m is not None and not math.isnan(m.teacher[0]):
            teacher += f"; {_pm(m.teacher)} %"
        if m is not None and m.teacher_sha256:
            teacher += "; sha256 " + ", ".join(f"`{h[:16]}`" for h in m.teacher_sha256)
        where = "–" if b is None else f"{b.get('device', '?')}, {b.get('date', '?')}" + (
            " (transcribed)" if b.get("transcribed_from") else "")
        lines.append("| " + " | ".join([
            f"`{r.recipe}`", r.dataset, paper,
            "–" if m is None else f"{_pm(m.last)} ({_pm(m.best)})",
            "–" if m is None else _pm(m.ratio),
            "–" if m is None else f"{len(m.runs)}, {_views(m.views)}",
            "–" if m is None else "; ".join(m.machines + m.dates),
            _duration(projection(b, 1)), _duration(projection(b, 8)), where, teacher, f"`{r.command}`", r.status,
        ]) + " |")
    lines += ["", "## Where each figure comes from", ""]
    for r in table:
        parts = [f"paper: {r.source}"]
        if r.measured:
            parts.append("runs: " + ", ".join(f"`{p}`" for p in r.measured.runs))
        if r.bench:
            src = f"bench: `{r.bench['command']}` (`docs/reproduction/bench/{r.bench['file']}`"
            if r.bench.get("transcribed_from"):
                src += f", transcribed from {r.bench['transcribed_from']}"
            parts.append(src + ")")
        parts += r.notes
        lines.append(f"- `{r.recipe}`: " + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"


def generate(*, inputs: Path = INPUTS, root: Path = Path("."), command: str = "python -m aip.reproduction") -> str:
    return render(rows(Path(inputs), root=Path(root)), command=command)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m aip.reproduction", description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", type=Path, default=INPUTS, help="folder with paper.toml and bench/ (%(default)s)")
    ap.add_argument("--root", type=Path, default=Path("."), help="where the rows' run globs start (%(default)s)")
    ap.add_argument("--out", type=Path, default=PAGE, help="the page to write (%(default)s)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if the page differs")
    args = ap.parse_args(argv)
    try:
        text = generate(inputs=args.inputs, root=args.root)
    except AipError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.check:
        same = args.out.is_file() and args.out.read_text() == text
        print(f"{args.out} is {'up to date' if same else 'stale: run python -m aip.reproduction'}")
        return 0 if same else 1
    from aip import files

    files.write_text(text, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
