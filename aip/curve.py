"""The views-to-accuracy curve: how many views of the datum a student needs for a share of its teacher.

A run's ``metrics.jsonl`` holds one row per evaluation (``step``, ``top1``); ``metrics.json`` holds the teacher's
top-1 and the run's ``effective_batch`` (views per optimiser step over all processes), so the views seen at an
evaluation are ``step x effective_batch``. :func:`read_curve` reads that, :func:`views_to_share` finds the views
at the first evaluation that reaches a share of the teacher (at the resolution of the evaluations: a run
evaluated every 2 epochs can only say "by epoch 2"), and :func:`report_section` draws accuracy and the ratio to
the teacher against views on a log axis and tables the views for :data:`SHARES` of the teacher, for
``aip report`` (:mod:`aip.report`). Runs of one variant (seeds) are averaged at the steps they share.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aip.plot import chance_line, footer, save_figure, seeds_phrase, vector_path

#: the shares of the teacher's top-1 the report asks the views for
SHARES: tuple[float, ...] = (0.90, 0.95, 0.98)


@dataclass(frozen=True)
class Curve:
    """Student top-1 (%) by views seen, the teacher's top-1 (%) it is measured against, chance top-1 (%) and the
    number of runs (seeds) averaged."""

    name: str
    views: list[int]
    top1: list[float]
    teacher_top1: float | None
    chance: float | None = None
    seeds: int = 1

    @property
    def ratio(self) -> list[float] | None:
        return None if not self.teacher_top1 else [t / self.teacher_top1 for t in self.top1]


def log_steps(total: int, per_decade: int) -> frozenset[int]:
    """``per_decade`` log-spaced steps per decade in ``[1, total]`` (rounded, distinct), the grid ``eval.log_grid``
    evaluates on: 3 gives 1, 2, 5, 10, 22, 46, 100, ... (``round(10 ** (i / 3))``); 0 gives none."""
    if per_decade <= 0:
        return frozenset()
    steps, i = set(), 0
    while (step := round(10 ** (i / per_decade))) <= total:
        steps.add(step)
        i += 1
    return frozenset(steps)


def chance_of(metrics: Any) -> float | None:
    """Chance top-1 (%) of a run: its ``metrics.json``'s ``chance`` (100 / classes), else 100 / its number of
    ``classes``; None when neither is there."""
    if not isinstance(metrics, dict):
        return None
    chance, classes = metrics.get("chance"), metrics.get("classes")
    if _number(chance) and 0 < chance <= 100:
        return float(chance)
    return 100.0 / len(classes) if isinstance(classes, list) and classes else None


def read_curve(run_dir: Path, *, name: str | None = None) -> Curve | None:
    """The curve of one run directory, or None without ``metrics.json`` (with ``effective_batch``) and
    ``metrics.jsonl``. Rows that are not an evaluation (hand-edited: not an object, a step or top-1 that is not a
    finite number) are left out; the report validates ``metrics.json`` itself (:func:`aip.report.check_metrics`)."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(metrics, dict):
        return None
    batch = metrics.get("effective_batch")
    if not _number(batch) or batch <= 0:
        return None
    points = sorted((int(r["step"]) * int(batch), float(r["top1"])) for r in rows
                    if isinstance(r, dict) and _number(r.get("step")) and r["step"] >= 0 and _number(r.get("top1")))
    teacher = metrics.get("teacher")
    teacher = teacher.get("top1") if isinstance(teacher, dict) else None
    return Curve(name=name or run_dir.name, views=[v for v, _ in points], top1=[t for _, t in points],
                 teacher_top1=float(teacher) if _number(teacher) else None, chance=chance_of(metrics))


def _number(x: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def mean_curve(curves: Sequence[Curve], *, name: str) -> Curve | None:
    """The mean over ``curves`` (a variant's seeds) at the views all of them were evaluated at."""
    if not curves:
        return None
    common = sorted(set.intersection(*(set(c.views) for c in curves)))
    if not common:
        return None
    top1 = [sum(c.top1[c.views.index(v)] for c in curves) / len(curves) for v in common]
    teachers = [c.teacher_top1 for c in curves if c.teacher_top1]
    chances = [c.chance for c in curves if c.chance]
    return Curve(name=name, views=common, top1=top1, teacher_top1=sum(teachers) / len(teachers) if teachers else None,
                 chance=sum(chances) / len(chances) if chances else None, seeds=sum(c.seeds for c in curves))


def views_to_share(curve: Curve, share: float) -> int | None:
    """Views seen at the first evaluation with top-1 >= ``share`` x the teacher's; None if never (or no teacher)."""
    if not curve.teacher_top1:
        return None
    for views, top1 in zip(curve.views, curve.top1):
        if top1 >= share * curve.teacher_top1 - 1e-9:
            return views
    return None


def _views(n: int | None) -> str:
    if n is None:
        return "not reached"
    return f"{n / 1e6:.2f} M" if n >= 1_000_000 else f"{n / 1e3:.1f} k" if n >= 1000 else str(n)


def table(curves: Sequence[Curve]) -> str:
    """A markdown table: per curve, the teacher, the final top-1 and ratio, and the views for each of
    :data:`SHARES`."""
    head = ["variant", "teacher top-1", "last top-1 (views)", "ratio"] + [f"views for {s:.0%}" for s in SHARES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in curves:
        teacher = f"{c.teacher_top1:.2f} %" if c.teacher_top1 else "-"
        ratio = f"{c.ratio[-1]:.1%}" if c.ratio else "-"
        lines.append("| " + " | ".join([c.name, teacher, f"{c.top1[-1]:.2f} % ({_views(c.views[-1])})", ratio,
                                        *(_views(views_to_share(c, s)) for s in SHARES)]) + " |")
    return "\n".join(lines)


def draw(curves: Sequence[Curve], *, title: str, command: str) -> Any:
    """The figure of accuracy (left) and the ratio to the teacher (right) against views seen, log x axis,
    unsaved (:func:`figure` writes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc, rat) = plt.subplots(1, 2, figsize=(12.5, 4.6))
    mixed = len({c.seeds for c in curves}) > 1
    for i, c in enumerate(curves):
        # a one-seed curve among averaged ones: hollow markers (the title says which is which); past ten curves
        # the colours repeat, so the line style changes with each round of them
        style = {"mfc": "white"} if mixed and c.seeds == 1 else {}
        style |= {"color": f"C{i % 10}", "ls": ("-", "--", ":", "-.")[i // 10 % 4]}
        acc.plot(c.views, c.top1, marker="o", ms=3, label=c.name, **style)
        if c.ratio:
            rat.plot(c.views, [100 * r for r in c.ratio], marker="o", ms=3, label=c.name, **style)
    teachers = {round(c.teacher_top1, 2) for c in curves if c.teacher_top1}
    for j, t in enumerate(sorted(teachers)):
        acc.axhline(t, color="0.5", ls=":", lw=1, label="teacher" if j == 0 else None)
    for level in sorted({round(c.chance, 6) for c in curves if c.chance}):
        chance_line(acc, level)
    for s in SHARES:
        rat.axhline(100 * s, color="0.6", ls=":", lw=0.8)
    xlabel = "views seen (optimiser steps × views per step)"
    acc.set(xscale="log", xlabel=xlabel, ylabel="student top-1 on the real test set (%)",
            title=f"{title}: student accuracy\n({seeds_phrase([c.seeds for c in curves], std=False)})")
    rat.set(xscale="log", xlabel=xlabel, ylabel="% of the teacher's top-1",
            title=f"{title}: share of the teacher\n(90, 95 and 98 % dotted)")
    # one legend for both panels, beside them: with a dozen variants it would hide the curves
    fig.legend(*acc.get_legend_handles_labels(), fontsize=7, loc="upper right", bbox_to_anchor=(0.995, 0.93))
    fig.tight_layout(rect=(0, 0.04, 0.84, 1))
    footer(fig, command)
    return fig


def figure(curves: Sequence[Curve], path: Path, *, title: str, command: str) -> Path:
    """:func:`draw` written to the PNG ``path`` (and its PDF beside it)."""
    return save_figure(draw(curves, title=title, command=command), path, palette=True)


def variant_curves(runs: Sequence[tuple[str, Path]]) -> list[Curve]:
    """One mean curve per variant from ``(variant name, run directory)`` pairs (a variant's seeds share a
    name); variants without a readable curve are left out."""
    by_name: dict[str, list[Curve]] = {}
    for name, path in runs:
        c = read_curve(path, name=name)
        if c is not None and c.views:
            by_name.setdefault(name, []).append(c)
    out = [mean_curve(cs, name=name) for name, cs in by_name.items()]
    return [c for c in out if c is not None]


def report_section(runs: Sequence[tuple[str, Path]], *, title: str, out: Path, slug: str,
                   command: str) -> list[str]:
    """The markdown lines (a figure and a table) of the views-to-accuracy curve of ``runs``; nothing when no
    variant was evaluated at two or more steps (a single point is no curve)."""
    curves = variant_curves(runs)
    if not any(len(c.views) >= 2 for c in curves):
        return []
    png = figure(curves, out / f"{slug}-views.png", title=title, command=command)
    return [f"![{title}: accuracy against views seen]({png.name})", "",
            f"*Student top-1 and its share of the teacher against the views seen (log axis; mean over seeds at "
            f"the evaluations they share; dashed: chance). PDF: [{vector_path(png).name}]({vector_path(png).name}). "
            f"Made by `{command}`.*", "",
            table(curves), "",
            "*views for N %*: views seen at the first evaluation that reached N % of the teacher's top-1 "
            "(resolution: the evaluation grid), or 'not reached'.", ""]


def runs_by_variant(runs: Sequence[Any]) -> list[tuple[str, Path]]:
    """``(variant, path)`` of runs with ``name`` and ``path`` (:class:`aip.report.Run`): the variant is the run's
    name without its ``_seed-N`` suffix."""
    return [(re.sub(r"_seed-\d+$", "", r.name), Path(r.path)) for r in runs]
