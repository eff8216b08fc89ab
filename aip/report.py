"""``aip report``: a Markdown report with figures from run directories (a sweep's, or any).

For each sweep (a folder with ``sweep.json``, :mod:`aip.sweep`) the report has a table with one row per
variant: the mean ± standard deviation over its seeds of the student's top-1 at the LAST evaluation and at
its BEST evaluation (both, since reporting only the best epoch flatters a method), the student/teacher ratio,
the teacher's top-1 and the run's time (distillation steps and evaluations, summed over every invocation of a
resumed run; the teacher, trained once and cached for the whole sweep, is not counted); then a figure of
accuracy along the sweep's axis (a line for a numeric axis, bars for a categorical one) and, when the sweep
asks for it (``[report] scatter``), accuracy against a measure of the source datum (``source_stats.json``,
:mod:`aip.source_stats`) with a least-squares line and its R^2. Plain run directories (or a folder of them)
form one group, a row per run.

Standard deviations are sample standard deviations (``ddof = 1``) over seeds; a row of one seed has none.
Each figure (a PNG at print resolution and a PDF beside it, :func:`aip.plot.save_figure`) carries the command that
made it, with paths relative to the report's folder, names the sweep's keys in words, says over how many seeds
its points are averaged, and marks chance accuracy. Files of an earlier report in the output folder are replaced;
a same-named file aip did not write is refused (:func:`aip.rundir.owned_outputs`).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aip import curve, files
from aip.errors import AipError, UsageError
from aip.plot import PRINT_DPI, chance_line, footer, place_labels, readable, save_figure, seeds_phrase, vector_path
from aip.rundir import owned_outputs
from aip.source_stats import FILE as STATS_FILE
from aip.sweep import PLAN


@dataclass
class Run:
    """One run directory: its variant's axis labels, its seed and what it measured."""

    name: str
    path: Path
    labels: dict[str, str]
    point: dict[str, Any]
    seed: int | None
    metrics: dict[str, Any] | None
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def last(self) -> float | None:
        return _num(self.metrics, "student", "top1")

    @property
    def best(self) -> float | None:
        return _num(self.metrics, "student_best", "top1")


@dataclass
class Group:
    """Runs that belong together: a sweep's, or a set of plain run directories."""

    name: str
    folder: Path
    axes: list[dict[str, Any]]
    runs: list[Run]
    description: str = ""
    scatter: list[str] = field(default_factory=list)
    command: str = ""


@dataclass
class Row:
    """One variant of a group, aggregated over its seeds."""

    labels: dict[str, str]
    point: dict[str, Any]
    n: int
    missing: int
    unfinished: int
    last: tuple[float, float]
    best: tuple[float, float]
    ratio: tuple[float, float]
    teacher: float
    run_minutes: float
    stats: dict[str, float] = field(default_factory=dict)
    chance: float = math.nan  # top-1 of a uniform guess, % (100 / classes)


def _num(d: dict[str, Any] | None, *keys: str) -> float | None:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return float(d) if isinstance(d, int | float) and not isinstance(d, bool) and d >= 0 else None


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``nan`` for fewer than two values; both ``nan`` for none)."""
    if not values:
        return math.nan, math.nan
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else math.nan


def fit_line(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """Least-squares ``y = slope * x + intercept`` and its coefficient of determination R^2."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(xa) < 2 or np.ptp(xa) == 0:
        raise ValueError("a line needs at least two distinct x values")
    slope, intercept = np.polyfit(xa, ya, 1)
    ss_res = float(((ya - (slope * xa + intercept)) ** 2).sum())
    ss_tot = float(((ya - ya.mean()) ** 2).sum())
    return float(slope), float(intercept), 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0


# ------------------------------------------------------------------------------------------------ reading
# The files read here may have been edited by hand. A damaged sweep.json stops the report with one line naming the
# file and the problem (the plan is what the report is about); a run's damaged metrics.json, source_stats.json or
# recipe.toml skips what it holds with a one-line warning (the run counts as missing), so that one bad run does not
# hide a sweep's other results.
class BadFile(ValueError):
    """What is wrong with an input file, in words ("is not JSON (...)", "variants[2].seed is a string, not ...")."""


def _kind(value: Any) -> str:
    """The JSON kind of ``value`` in words, for a message."""
    if isinstance(value, bool):
        return "true/false"
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _expect(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    """``value`` if it is a ``kind`` (never a bool where a number is wanted), else :class:`BadFile`."""
    if isinstance(value, kind) and not (isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple)
                                                                                 else (kind,))):
        return value
    raise BadFile(f"{where} is {_kind(value)}, not {what}")


def load_json(path: Path, *, nan: bool = False) -> Any:
    """The JSON in ``path``; :class:`BadFile` when it cannot be read, is not JSON, or (unless ``nan``) holds NaN
    or Infinity, which JSON does not allow and Python's reader would pass on. (aip writes NaN into a run's
    ``metrics.json`` for a value it could not measure; :func:`check_metrics` names it where it matters.)"""
    def constant(name: str) -> Any:
        if nan:
            return float(name.replace("Infinity", "inf"))
        raise BadFile(f"holds {name}, which is not a JSON number")

    if not path.is_file():  # a FIFO would block the read; a folder or device is no file aip wrote
        raise BadFile(f"is {files.describe(path)}, not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadFile("is not text (not UTF-8)") from None
    except OSError as e:
        raise BadFile(f"cannot be read ({e.strerror or e})") from None
    try:
        return json.loads(text, parse_constant=constant)
    except json.JSONDecodeError as e:
        raise BadFile(f"is not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise BadFile("is nested too deeply to be a file aip wrote") from None


def _finite(value: Any, where: str, *, lo: float = 0.0, hi: float = math.inf) -> float:
    _expect(value, (int, float), where, "a number")
    if not math.isfinite(value):
        raise BadFile(f"{where} is {value}" + (" (not measured)" if math.isnan(value) else ", not a finite number"))
    if not lo <= value <= hi:
        raise BadFile(f"{where} is {value}, outside {lo:g}..{hi:g}")
    return float(value)


def check_metrics(data: Any) -> dict[str, Any]:
    """``data`` (a run's ``metrics.json``) if the fields the report reads have their types and ranges; else
    :class:`BadFile` naming the first that does not."""
    _expect(data, dict, "the file", "an object")
    if not isinstance(data.get("student"), dict) or "top1" not in data["student"]:
        raise BadFile("has no student.top1 (the student's accuracy)")
    for section in ("student", "student_best", "teacher"):  # student_best.top1 is -1 before any evaluation
        if section in data:
            part = _expect(data[section], dict, section, "an object with top1")
            if "top1" in part:
                _finite(part["top1"], f"{section}.top1", lo=-1.0 if section == "student_best" else 0.0, hi=100.0)
    for key, hi in (("ratio", math.inf), ("wall_seconds", math.inf), ("chance", 100.0), ("effective_batch", math.inf)):
        if key in data:
            _finite(data[key], key, hi=hi)
    if "time" in data:
        for k, v in _expect(data["time"], dict, "time", "an object").items():
            _finite(v, f"time.{k}")
    if "finished" in data:
        _expect(data["finished"], bool, "finished", "true or false")
    if "copied_from" in data and data["copied_from"] is not None:
        _expect(data["copied_from"], str, "copied_from", "a string")
    if "classes" in data:
        _expect(data["classes"], list, "classes", "a list of class names")
    return data


def _stats(data: Any) -> dict[str, Any]:
    """A run's ``source_stats.json``: an object whose numbers are finite (other values are kept for the record)."""
    for k, v in _expect(data, dict, "the file", "an object").items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            _finite(v, k, lo=-math.inf)
    return data


def _warn(path: Path, problem: str, consequence: str) -> None:
    print(f"warning: {path} {problem}; {consequence}", file=sys.stderr)


def _optional(path: Path, check: Callable[[Any], dict[str, Any]], consequence: str) -> dict[str, Any] | None:
    """The checked content of ``path``, or None (with a one-line warning when it exists but is damaged)."""
    if not os.path.lexists(path):
        return None
    try:
        return check(load_json(path, nan=True))
    except BadFile as e:
        _warn(path, str(e), consequence)
        return None


def _run(path: Path, *, labels: dict[str, str], point: dict[str, Any], seed: int | None, name: str) -> Run:
    return Run(name=name, path=path, labels=labels, point=point, seed=seed,
               metrics=_optional(path / "metrics.json", check_metrics,
                                 "the run is left out of the report (counted as missing); re-run it, or restore "
                                 "the file aip wrote"),
               stats=_optional(path / STATS_FILE, _stats, "its measures are left out of the scatter plots; restore "
                                                          "the file aip wrote") or {})


_SCALAR = (str, int, float, bool, type(None))


def check_plan(data: Any) -> dict[str, Any]:
    """``data`` (a ``sweep.json``) if it has the fields the report reads with their types; else :class:`BadFile`
    naming the first that does not."""
    _expect(data, dict, "the file", "an object (a sweep plan)")
    for key in ("name", "description", "command"):
        if key in data:
            _expect(data[key], str, key, "a string")
    axes = _expect(data.get("axes", []), list, "axes", "a list")
    for i, axis in enumerate(axes):
        _expect(_expect(axis, dict, f"axes[{i}]", "an object").get("key"), str, f"axes[{i}].key", "a string")
    report_part = _expect(data.get("report", {}), dict, "report", "an object")
    for i, key in enumerate(_expect(report_part.get("scatter", []), list, "report.scatter", "a list")):
        _expect(key, str, f"report.scatter[{i}]", "a string")
    if "variants" not in data:
        raise BadFile("has no variants")
    for i, v in enumerate(_expect(data["variants"], list, "variants", "a list")):
        where = f"variants[{i}]"
        _expect(v, dict, where, "an object")
        name = _expect(v.get("name"), str, f"{where}.name", "a string")
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise BadFile(f"{where}.name {name!r} is not a run folder's name")
        for k, value in _expect(v.get("labels", {}), dict, f"{where}.labels", "an object").items():
            _expect(value, _SCALAR, f"{where}.labels.{k}", "a string")
        for k, value in _expect(v.get("point", {}), dict, f"{where}.point", "an object").items():
            for x in value if isinstance(value, list) else [value]:  # a range, e.g. source.scale = [0.5, 1.0]
                _expect(x, _SCALAR, f"{where}.point.{k}", "a value or a list of values")
        if v.get("seed") is not None:
            _expect(v["seed"], int, f"{where}.seed", "a whole number")
    return data


def _sweep_group(folder: Path) -> Group:
    path = folder / PLAN
    try:
        plan = check_plan(load_json(path))
    except BadFile as e:
        raise AipError(f"{path} {e}; restore the sweep.json that `aip sweep` wrote, or run the sweep again (it "
                       "rewrites the plan and skips finished runs)") from None
    runs = [_run(folder / v["name"], labels={k: str(x) for k, x in v.get("labels", {}).items()},
                 point=v.get("point", {}), seed=v.get("seed"), name=v["name"]) for v in plan["variants"]]
    return Group(name=plan.get("name", folder.name), folder=folder, axes=plan.get("axes", []), runs=runs,
                 description=plan.get("description", ""), scatter=plan.get("report", {}).get("scatter", []),
                 command=plan.get("command", ""))


def _seed_of(path: Path) -> int | None:
    """The seed of the run in ``path`` (``train.seed`` of its recipe.toml; 0 when the recipe sets none), or None
    with a one-line warning when the recipe cannot be read or its seed is not a whole number."""
    from aip.recipe import tomllib

    recipe = path / "recipe.toml"
    if not os.path.lexists(recipe):
        return None
    try:
        if not recipe.is_file():
            raise BadFile(f"is {files.describe(recipe)}, not a file")
        data = tomllib.loads(recipe.read_text(encoding="utf-8"))
        train = _expect(data.get("train", {}), dict, "[train]", "a table")
        return int(_expect(train.get("seed", 0), int, "train.seed", "a whole number"))
    except (OSError, UnicodeDecodeError) as e:
        problem = f"cannot be read ({getattr(e, 'strerror', None) or e})"
    except tomllib.TOMLDecodeError as e:
        problem = f"is not TOML ({str(e).splitlines()[0] if str(e) else 'a syntax error'})"
    except RecursionError:
        problem = "is nested too deeply"
    except BadFile as e:
        problem = str(e)
    _warn(recipe, problem, "its seed is shown as unknown")
    return None


def collect(dirs: list[Path]) -> list[Group]:
    """The groups of runs under ``dirs``: a sweep folder each, and plain run directories (given, or the
    children of a folder) as one group per folder given."""
    groups: list[Group] = []
    for d in map(Path, dirs):
        if (d / PLAN).is_file():
            groups.append(_sweep_group(d))
            continue
        run_dirs = [d] if (d / "metrics.json").is_file() else sorted(
            c for c in d.iterdir() if (c / "metrics.json").is_file()) if d.is_dir() else []
        if not run_dirs:
            raise UsageError(f"{d} holds no sweep.json and no run directory (metrics.json); pass a sweep's folder "
                             "or run directories")
        runs = [_run(r, labels={"run": r.name}, point={"run": r.name}, seed=_seed_of(r), name=r.name)
                for r in run_dirs]
        groups.append(Group(name=d.name, folder=d, axes=[{"key": "run", "labels": [r.name for r in runs],
                                                          "values": [r.name for r in runs]}], runs=runs))
    return groups


def run_seconds(metrics: dict[str, Any] | None) -> float | None:
    """A run's cost: its distillation steps and evaluations over every invocation (``metrics["time"]``; the
    ``wall_seconds`` of a resumed run count its last invocation only), or the wall time where there is no
    breakdown."""
    steps, evals = _num(metrics, "time", "distillation_steps"), _num(metrics, "time", "evaluations")
    if steps is not None and evals is not None:
        return steps + evals
    return _num(metrics, "wall_seconds")


def aggregate(group: Group) -> list[Row]:
    """One row per variant (same axis labels), in the sweep's order, aggregated over seeds."""
    order: dict[tuple[str, ...], list[Run]] = {}
    keys = [a["key"] for a in group.axes]
    for r in group.runs:
        order.setdefault(tuple(r.labels.get(k, "") for k in keys), []).append(r)
    rows = []
    for runs in order.values():
        have = [r for r in runs if r.metrics is not None and r.last is not None]
        teacher = [t for r in have if (t := _num(r.metrics, "teacher", "top1")) is not None]
        walls = [w for r in have if (w := run_seconds(r.metrics)) is not None]
        chances = [c for r in have if (c := curve.chance_of(r.metrics)) is not None]
        stats: dict[str, float] = {}
        for key in {k for r in runs for k in r.stats}:
            vals = [v for r in runs if (v := _num(r.stats, key)) is not None]
            if vals:
                stats[key] = float(np.mean(vals))
        rows.append(Row(
            labels=runs[0].labels, point=runs[0].point, n=len(have), missing=len(runs) - len(have),
            unfinished=sum(not r.metrics.get("finished", True) for r in have),
            last=mean_std([r.last for r in have]),
            best=mean_std([b if (b := r.best) is not None else r.last for r in have]),
            ratio=mean_std([100 * r.metrics["ratio"] for r in have if _num(r.metrics, "ratio") is not None]),
            teacher=float(np.mean(teacher)) if teacher else math.nan,
            run_minutes=float(np.mean(walls)) / 60 if walls else math.nan, stats=stats,
            chance=float(np.mean(chances)) if chances else math.nan))
    return rows


# ------------------------------------------------------------------------------------------------ writing
def _pm(ms: tuple[float, float], digits: int = 2) -> str:
    m, s = ms
    if math.isnan(m):
        return "–"
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if not math.isnan(s) else "")


def table(group: Group, rows: list[Row]) -> str:
    keys = [a["key"] for a in group.axes]
    head = [*keys, "seeds", "last top-1 (%)", "best top-1 (%)", "student/teacher (last, %)", "teacher top-1 (%)",
            "distil + evals (min)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        seeds = str(r.n) + (f" (+{r.missing} missing)" if r.missing else "") + (
            f" ({r.unfinished} unfinished)" if r.unfinished else "")
        cells = [*(f"`{r.labels.get(k, '')}`" for k in keys), seeds, _pm(r.last), _pm(r.best), _pm(r.ratio, 1),
                 "–" if math.isnan(r.teacher) else f"{r.teacher:.2f}",
                 "–" if math.isnan(r.run_minutes) else f"{r.run_minutes:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _numeric(values: list[Any]) -> bool:
    return bool(values) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def teacher_marks(rows: list[Row], x_of: Callable[[Row], Any]) -> list[tuple[Any, float]]:
    """Where a figure marks the teacher's top-1: ``[(None, top1)]`` when every row has the same teacher (a line
    across the figure); else ``(x, mean top-1 of the rows at x)`` for each position ``x_of(row)``, sorted, so a
    sweep over teachers shows each one's accuracy beside its students and not their average."""
    have = [r for r in rows if not math.isnan(r.teacher)]
    if not have:
        return []
    if max(r.teacher for r in have) - min(r.teacher for r in have) < 1e-6:
        return [(None, have[0].teacher)]
    at: dict[Any, list[float]] = {}
    for r in have:
        at.setdefault(x_of(r), []).append(r.teacher)
    return [(x, float(np.mean(v))) for x, v in sorted(at.items())]


def chance_lines(ax: Any, rows: list[Row]) -> None:
    """The chance line of ``rows`` (one per distinct chance level: a sweep over datasets has several)."""
    levels = sorted({round(r.chance, 6) for r in rows if not math.isnan(r.chance)})
    for i, level in enumerate(levels):
        line = chance_line(ax, level)
        if line is not None and i:
            line.set_label(f"chance ({level:.3g} %)")


def log_axis(ax: Any, xs: list[Any]) -> None:
    """A logarithmic x axis, ticked at the sweep's values in plain numbers, where they are all positive and span
    a factor of 16 or more (e.g. 10..60000 images); else the axis is left linear."""
    positive = [v for v in xs if v > 0]
    if len(positive) == len(xs) and max(positive) / min(positive) >= 16:
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        ax.set_xscale("log")
        ax.set_xticks(sorted(set(xs)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())


def draw_axis(group: Group, rows: list[Row], *, command: str) -> Any:
    """The figure of student accuracy along the sweep's first axis (a line if numeric, else bars; other axes as
    separate series), unsaved: :func:`axis_figure` writes it. None without rows or axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows or not group.axes:
        return None
    first = group.axes[0]["key"]
    others = [a["key"] for a in group.axes[1:]]
    series: dict[str, list[Row]] = {}
    for r in rows:
        series.setdefault(", ".join(f"{readable(k)} {r.labels.get(k, '')}" for k in others), []).append(r)
    xs_all = [r.point.get(first) for r in rows]
    numeric = _numeric(xs_all) and len(set(xs_all)) > 1
    mixed = len({r.n for r in rows}) > 1 and min(r.n for r in rows) == 1  # one-seed points among averages: hollow
    ticks = [] if numeric else list(dict.fromkeys(r.labels.get(first, "") for r in rows))  # the bars' labels
    fig, ax = plt.subplots(figsize=(max(6.5, 0.7 * len(rows) + 3) + 1.8, 4.6))
    if numeric:
        for label, rs in series.items():
            rs = sorted(rs, key=lambda r: r.point[first])
            x = [r.point[first] for r in rs]
            line = ax.errorbar(x, [r.last[0] for r in rs], yerr=[0 if math.isnan(r.last[1]) else r.last[1]
                                                                 for r in rs],
                               marker="o", capsize=4, lw=2, label=f"last {label}".strip())
            color = line[0].get_color()
            ax.plot(x, [r.best[0] for r in rs], ls="--", marker="^", color=color, alpha=0.6,
                    label=f"best {label}".strip())
            if mixed:
                one = [r for r in rs if r.n == 1]
                ax.scatter([r.point[first] for r in one], [r.last[0] for r in one], s=40, facecolors="white",
                           edgecolors=color, zorder=3, linewidths=1.5)
        log_axis(ax, xs_all)
    else:
        width = 0.8 / max(len(series), 1)
        for i, (label, rs) in enumerate(series.items()):
            pos = [ticks.index(r.labels.get(first, "")) + (i - (len(series) - 1) / 2) * width for r in rs]
            bars = ax.bar(pos, [r.last[0] for r in rs], width=width * 0.9,
                          yerr=[0 if math.isnan(r.last[1]) else r.last[1] for r in rs], capsize=4,
                          label=f"last {label}".strip())
            if mixed:  # a one-seed bar: hatched, and its label says n=1
                for bar, r in zip(bars, rs):
                    if r.n == 1:
                        bar.set_hatch("//")
            # the value on each bar: the figure is read without the table beside it
            ax.bar_label(bars, labels=[f"{r.last[0]:.1f}" + ("\nn=1" if mixed and r.n == 1 else "") for r in rs],
                         label_type="center", color="white", fontsize=8 if len(series) == 1 else 6)
            ax.scatter(pos, [r.best[0] for r in rs], marker="^", color="black", zorder=3,
                       label="best" if i == 0 else None)
        ax.set_xticks(range(len(ticks)), ticks, rotation=30 if len(ticks) > 4 else 0, ha="right"
                      if len(ticks) > 4 else "center")
    ax.set_xlabel(readable(first))
    marks = teacher_marks(rows, (lambda r: r.point[first]) if numeric
                          else (lambda r: ticks.index(r.labels.get(first, ""))))
    if len(marks) == 1 and marks[0][0] is None:  # one teacher for the whole sweep: a line across
        ax.axhline(marks[0][1], color="gray", ls=":", label="teacher")
    elif marks and numeric:  # the teacher changes along the axis (a teacher sweep): its accuracy there
        ax.plot(*zip(*marks), color="gray", ls=":", marker="s", ms=5, label="teacher")
    elif marks:
        ax.scatter(*zip(*marks), marker="_", s=900, linewidths=2, color="gray", zorder=4, label="teacher")
    chance_lines(ax, rows)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi + 0.05 * (hi - lo))  # headroom: a teacher line at the top edge is hidden by the frame
    ax.set_ylabel("student top-1 on the real test set (%)")
    # two lines: sweep names are long
    phrase = seeds_phrase([r.n for r in rows], one="hollow" if numeric else "hatched, n=1")
    ax.set_title(f"{group.name}: student accuracy by {readable(first)}\n({phrase})")
    ax.grid(alpha=0.3)
    # beside the plot: never over a point; each series' last evaluation first (matplotlib lists error bars last)
    entries = sorted(zip(*ax.get_legend_handles_labels()), key=lambda e: (not e[1].startswith("last"),
                                                                         not e[1].startswith("best")))
    ax.legend(*zip(*entries), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    footer(fig, command)
    return fig


def axis_figure(group: Group, rows: list[Row], path: Path, *, command: str) -> Path | None:
    """:func:`draw_axis` written to the PNG ``path`` (and its PDF); None when there is nothing to draw."""
    fig = draw_axis(group, rows, command=command)
    return None if fig is None else save_figure(fig, path, palette=True)


def draw_scatter(group: Group, rows: list[Row], key: str, *, command: str) -> tuple[Any, float] | None:
    """The figure of accuracy against the source measure ``key`` with the least-squares line, unsaved, and the
    fit's R^2; ``None`` with fewer than two distinct values of ``key``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(r.stats[key], r.last[0], r.last[1], r) for r in rows if key in r.stats and not math.isnan(r.last[0])]
    if len({p[0] for p in pts}) < 2:
        return None
    x, y = [p[0] for p in pts], [p[1] for p in pts]
    slope, intercept, r2 = fit_line(x, y)
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.errorbar(x, y, yerr=[0 if math.isnan(p[2]) else p[2] for p in pts], fmt="o", capsize=4, ms=7)
    one = [p for p in pts if p[3].n == 1]
    if one and len(one) < len(pts):  # one-seed points among averages: hollow
        ax.scatter([p[0] for p in one], [p[1] for p in one], s=49, facecolors="white", edgecolors="C0", zorder=3,
                   linewidths=1.5)
    grid = np.linspace(min(x), max(x), 50)
    ax.plot(grid, slope * grid + intercept, color="C3", label=f"least squares: R² = {r2:.3f}")
    chance_lines(ax, [p[3] for p in pts])
    ax.set(xlabel=readable(key), ylabel="student top-1, last evaluation (%)",
           title=f"{group.name}: accuracy against {readable(key)}\n"  # two lines: names are long
                 f"(R² = {r2:.3f}; {seeds_phrase([p[3].n for p in pts])})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    place_labels(ax, x, y, [" / ".join(p[3].labels.values()) for p in pts])  # once the layout is final
    footer(fig, command)
    return fig, r2


def scatter_figure(group: Group, rows: list[Row], key: str, path: Path, *, command: str
                   ) -> tuple[Path, float] | None:
    """:func:`draw_scatter` written to the PNG ``path`` (and its PDF), and R^2; ``None`` with too few points."""
    drawn = draw_scatter(group, rows, key, command=command)
    if drawn is None:
        return None
    fig, r2 = drawn
    return save_figure(fig, path, palette=True), r2


def shown_command(command: str, out: Path) -> str:
    """``command`` as a report shows it: each absolute path in it (``PATH`` or ``--opt=PATH``) relative to the
    report's folder ``out``, so that no machine's layout is written into a report; relative paths as given."""
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: shown as it is
        return command
    base = Path(out).absolute()

    def rel(word: str) -> str:
        return os.path.relpath(word, base) if os.path.isabs(word) else word

    shown = []
    for w in words:
        opt, eq, value = w.partition("=")
        shown.append(f"{opt}={rel(value)}" if eq and opt.startswith("-") else rel(w))
    return shlex.join(shown)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "-" for c in text).strip("-") or "group"


def report(dirs: list[str | Path], *, out: Path | None = None, command: str = "") -> Path:
    """Write ``report.md`` (and its figures, PNG and PDF) for the runs under ``dirs`` into ``out``; returns its
    path.

    ``out`` defaults to the one folder given, or ``report/`` for several. ``command`` is printed under every
    figure (default: the equivalent ``aip report`` command line), its absolute paths relative to ``out``
    (:func:`shown_command`). The files of an earlier report in ``out`` are replaced; a same-named file aip did
    not write there is refused before any is written (:func:`aip.rundir.owned_outputs`).
    """
    paths = [Path(d) for d in dirs]
    if not paths:
        raise UsageError("aip report needs at least one run directory or sweep folder")
    out = Path(out) if out is not None else (paths[0] if len(paths) == 1 else Path("report"))
    command = shown_command(command or shlex.join(["aip", "report", *map(str, paths), "--out", str(out)]), out)
    groups = collect(paths)
    with owned_outputs(out) as staging:
        text = _write(groups, staging, command=command, out=out)
        files.write_text(text, staging / "report.md")
    return out / "report.md"


def _shown_path(path: Path, out: Path) -> str:
    """``path`` for the report's text: relative to ``out`` when absolute, as given when relative."""
    return os.path.relpath(path, Path(out).absolute()) if Path(path).is_absolute() else str(path)


def _write(groups: list[Group], staging: Path, *, command: str, out: Path) -> str:
    """The report's markdown; its figures are written into ``staging``."""
    parts = ["# Report", "", f"Made by `{command}`.", ""]
    for g in groups:
        rows = aggregate(g)
        parts += [f"## {g.name}", ""]
        if g.description:
            parts += [g.description, ""]
        if g.command:
            parts += [f"Sweep: `{shown_command(g.command, out)}` ({_shown_path(g.folder, out)}).", ""]
        parts += [table(g, rows), "",
                  "Mean ± sample std over seeds. *last*: the final evaluation; *best*: the best evaluation of the "
                  "run (an optimistic number, shown for comparison).", ""]
        copied = [(r.name, r.metrics["copied_from"]) for r in g.runs if r.metrics and r.metrics.get("copied_from")]
        if copied:
            parts += ["Copied, not run again (`aip sweep --reuse`: the same resolved recipe and seed as a finished "
                      "run elsewhere): " + "; ".join(f"`{name}` from `{src}`" for name, src in copied) + ".", ""]
        made = [r for r in rows if r.n]
        fig = axis_figure(g, made, staging / f"{_slug(g.name)}-accuracy.png", command=command) if made else None
        if fig is not None:
            parts += [f"![{g.name}: accuracy]({fig.name})", "",
                      f"*Student top-1 by {readable(g.axes[0]['key'])} (`{g.axes[0]['key']}`; last evaluation "
                      f"with error bars, best as triangles; dashed: chance). PNG at {PRINT_DPI} dpi, PDF: "
                      f"[{vector_path(fig).name}]({vector_path(fig).name}). Made by `{command}`.*", ""]
        for key in g.scatter:
            made_scatter = scatter_figure(g, made, key, staging / f"{_slug(g.name)}-vs-{_slug(key)}.png",
                                          command=command)
            if made_scatter is None:
                parts += [f"No scatter against `{key}`: fewer than two variants have it in {STATS_FILE}.", ""]
                continue
            png, r2 = made_scatter
            parts += [f"![{g.name}: accuracy against {key}]({png.name})", "",
                      f"*Student top-1 against {readable(key)} (`{key}`), least-squares fit R² = {r2:.3f} over "
                      f"{sum(key in r.stats for r in made)} variants. PDF: [{vector_path(png).name}]"
                      f"({vector_path(png).name}). Made by `{command}`.*", ""]
        parts += curve.report_section(curve.runs_by_variant(g.runs), title=g.name, out=staging,
                                      slug=_slug(g.name), command=command)  # views-to-accuracy, where evaluated twice+
    return "\n".join(parts)
