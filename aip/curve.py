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
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aip.plot import save_figure

#: the shares of the teacher's top-1 the report asks the views for
SHARES: tuple[float, ...] = (0.90, 0.95, 0.98)


@dataclass(frozen=True)
class Curve:
    """Student top-1 (%) by views seen, and the teacher's top-1 (%) it is measured against."""

    name: str
    views: list[int]
    top1: list[float]
    teacher_top1: float | None

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


def read_curve(run_dir: Path, *, name: str | None = None) -> Curve | None:
    """The curve of one run directory, or None without ``metrics.json`` (with ``effective_batch``) and
    ``metrics.jsonl``."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError):
        return None
    batch = metrics.get("effective_batch")
    if not isinstance(batch, int | float) or batch <= 0:
        return None
    points = sorted((int(r["step"]) * int(batch), float(r["top1"])) for r in rows
                    if isinstance(r.get("step"), int | float) and isinstance(r.get("top1"), int | float))
    teacher = (metrics.get("teacher") or {}).get("top1")
    return Curve(name=name or run_dir.name, views=[v for v, _ in points], top1=[t for _, t in points],
                 teacher_top1=float(teacher) if isinstance(teacher, int | float) else None)


def mean_curve(curves: Sequence[Curve], *, name: str) -> Curve | None:
    """The mean over ``curves`` (a variant's seeds) at the views all of them were evaluated at."""
    if not curves:
        return None
    common = sorted(set.intersection(*(set(c.views) for c in curves)))
    if not common:
        return None
    top1 = [sum(c.top1[c.views.index(v)] for c in curves) / len(curves) for v in common]
    teachers = [c.teacher_top1 for c in curves if c.teacher_top1]
    return Curve(name=name, views=common, top1=top1, teacher_top1=sum(teachers) / len(teachers) if teachers else None)


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


def figure(curves: Sequence[Curve], path: Path, *, title: str, command: str) -> Path:
    """Accuracy (left) and the ratio to the teacher (right) against views seen, log x axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc, rat) = plt.subplots(1, 2, figsize=(11, 4.4))
    for i, c in enumerate(curves):
        acc.plot(c.views, c.top1, marker="o", ms=3, color=f"C{i % 10}", label=c.name)
        if c.ratio:
            rat.plot(c.views, [100 * r for r in c.ratio], marker="o", ms=3, color=f"C{i % 10}", label=c.name)
    teachers = {round(c.teacher_top1, 2) for c in curves if c.teacher_top1}
    for t in sorted(teachers):
        acc.axhline(t, color="0.5", ls="--", lw=0.8)
    for s in SHARES:
        rat.axhline(100 * s, color="0.6", ls=":", lw=0.8)
    acc.set(xscale="log", xlabel="views seen (step x effective batch)", ylabel="student top-1 (%)",
            title=f"{title}: accuracy (teacher dashed)")
    rat.set(xscale="log", xlabel="views seen (step x effective batch)", ylabel="% of the teacher's top-1",
            title=f"{title}: share of the teacher (90/95/98 % dotted)")
    acc.legend(fontsize=7)
    fig.text(0.01, 0.01, command, fontsize=8, color="0.35", family="monospace", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save_figure(fig, path)


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
            f"the evaluations they share). Made by `{command}`.*", "",
            table(curves), "",
            "*views for N %*: views seen at the first evaluation that reached N % of the teacher's top-1 "
            "(resolution: the evaluation grid), or 'not reached'.", ""]


def runs_by_variant(runs: Sequence[Any]) -> list[tuple[str, Path]]:
    """``(variant, path)`` of runs with ``name`` and ``path`` (:class:`aip.report.Run`): the variant is the run's
    name without its ``_seed-N`` suffix."""
    return [(re.sub(r"_seed-\d+$", "", r.name), Path(r.path)) for r in runs]
