"""Figures (aip.plot's conventions, used by aip report and the views-to-accuracy curve): a 300 dpi PNG and a PDF
beside it, readable axis names, the seeds behind each point, a chance line, no absolute path in the footer, and
scatter labels that do not overlap. Figures are read back from the matplotlib Figure before it is saved (the
``save_figure`` of aip.report and aip.curve is wrapped to keep them)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from aip import curve, plot  # noqa: E402
from aip import report as report_mod  # noqa: E402
from aip.errors import AipError  # noqa: E402
from aip.sweep import PLAN  # noqa: E402


def sweep_folder(folder: Path, key: str, results: dict[Any, list[float]], *, chance: float | None = 10.0,
                 stats: dict[Any, float] | None = None, views: bool = False) -> Path:
    """A sweep over ``key`` with ``results[value]`` = the last top-1 of each seed; with ``views``, two
    evaluations per run (so the views-to-accuracy curve is drawn too)."""
    variants = []
    for value, tops in results.items():
        for seed, top1 in enumerate(tops):
            name = f"v-{value}_seed-{seed}"
            variants.append({"name": name, "point": {key: value}, "labels": {key: str(value)}, "seed": seed})
            d = folder / name
            d.mkdir(parents=True)
            metrics = {"finished": True, "student": {"top1": top1}, "student_best": {"top1": top1},
                       "teacher": {"top1": 80.0}, "ratio": top1 / 80, "effective_batch": 64,
                       **({"chance": chance} if chance is not None else {})}
            (d / "metrics.json").write_text(json.dumps(metrics))
            (d / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "top1": t}) + "\n"
                                                     for s, t in ((10, top1 / 2), (40, top1))[not views:]))
            if stats is not None:
                (d / "source_stats.json").write_text(json.dumps({"png_bytes": stats[value]}))
    (folder / PLAN).write_text(json.dumps({
        "name": folder.name, "axes": [{"key": key, "values": list(results), "labels": list(map(str, results))}],
        "report": {"scatter": ["png_bytes"] if stats else []}, "variants": variants}))
    return folder


class Drawn(dict):
    """The figures aip.report and aip.curve made, by file name, read before saving; written only with ``save``
    (a 300 dpi PNG and a PDF take a while on a loaded machine)."""

    save = False
    dpi: int | None = None  # a low resolution where only the files' names matter


@pytest.fixture()
def drawn(monkeypatch: pytest.MonkeyPatch) -> Drawn:
    figs = Drawn()

    def keep(fig: Any, path: Path, **kwargs: Any) -> Path:
        renderer = fig.canvas.get_renderer()
        figs[Path(path).name] = {"axes": fig.axes, "footer": [t.get_text() for t in fig.texts
                                                              if t.get_gid() == "footer"],
                                 "boxes": {t.get_text(): text_box(t, renderer) if hasattr(t, "update_positions")
                                           else t.get_window_extent(renderer) for ax in fig.axes for t in ax.texts}}
        if figs.save:
            return plot.save_figure(fig, path, **kwargs, **({"dpi": figs.dpi} if figs.dpi else {}))
        plt.close(fig)
        return Path(path)

    monkeypatch.setattr(report_mod, "save_figure", keep)
    monkeypatch.setattr(curve, "save_figure", keep)
    return figs


def chance_ys(ax: Any) -> list[float]:
    return [line.get_ydata()[0] for line in ax.get_lines() if line.get_gid() == "chance"]


def test_save_figure_writes_a_300_dpi_png_and_a_pdf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    png = plot.save_figure(fig, tmp_path / "f.png")
    assert png == tmp_path / "f.png" and png.read_bytes()[:4] == b"\x89PNG"
    with Image.open(png) as img:
        assert img.info["dpi"] == pytest.approx((300, 300), abs=0.5) and img.size == (1200, 900)
    assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"
    fig, ax = plt.subplots(figsize=(4.6, 3.3))  # 4.6 x 300 is 1379.99... in floating point
    ax.plot([0, 1], [0, 1])
    with Image.open(plot.save_figure(fig, tmp_path / "p.png", palette=True)) as img:
        assert img.mode == "P" and img.size == (1380, 990)
        assert img.info["dpi"] == pytest.approx((300, 300), abs=0.5)
    assert plot.figure_names("x.png") == ("x.png", "x.pdf")
    monkeypatch.setattr(plot, "MAX_PIXELS", 1_000_000)
    huge, _ = plt.subplots(figsize=(10, 10))  # past the pixel budget: a lower resolution, the PDF unchanged
    with Image.open(plot.save_figure(huge, tmp_path / "huge.png")) as img:
        assert img.size == (1000, 1000)


def test_report_figures_are_print_png_and_pdf_with_readable_names_and_chance(tmp_path: Path, drawn) -> None:
    folder = sweep_folder(tmp_path / "width", "student.kwargs.width", {8: [50.0, 54.0], 32: [70.0, 72.0]},
                          views=True)
    drawn.save = True
    text = report_mod.report([folder]).read_text()
    names = {"width-accuracy.png", "width-views.png"}
    assert names <= set(drawn)
    for name in names:
        assert (folder / name).read_bytes()[:4] == b"\x89PNG" and name in text
        pdf = plot.vector_path(folder / name)
        assert pdf.read_bytes()[:5] == b"%PDF-" and f"]({pdf.name})" in text
        with Image.open(folder / name) as img:
            assert img.info["dpi"] == pytest.approx((300, 300), abs=0.5)
    (ax,) = drawn["width-accuracy.png"]["axes"]
    assert ax.get_xlabel() == "student width" and "student.kwargs" not in ax.get_title()
    assert "mean ± std over 2 seeds" in ax.get_title()
    assert chance_ys(ax) == [10.0]
    assert "chance (10 %)" in [t.get_text() for t in ax.get_legend().get_texts()]
    acc, _ = drawn["width-views.png"]["axes"]
    assert chance_ys(acc) == [10.0] and "(mean over 2 seeds)" in acc.get_title()  # a curve of means: no std


def test_one_seed_points_are_not_called_a_mean(tmp_path: Path, drawn) -> None:
    folder = sweep_folder(tmp_path / "lr", "train.lr", {0.1: [50.0], 0.3: [60.0]}, chance=None)
    for m in folder.glob("*/metrics.json"):  # no "chance" key: 100 / the number of classes
        m.write_text(json.dumps({**json.loads(m.read_text()), "classes": ["a", "b", "c", "d"]}))
    report_mod.report([folder])
    (ax,) = drawn["lr-accuracy.png"]["axes"]
    assert "one seed per point" in ax.get_title() and "mean" not in ax.get_title()
    assert ax.get_xlabel() == "learning rate" and chance_ys(ax) == [25.0]
    # mixed: one variant has three seeds, the other one: the one-seed point is drawn hollow and said to be
    mixed = sweep_folder(tmp_path / "mixed", "train.lr", {0.1: [50.0, 52.0, 54.0], 0.3: [60.0]})
    report_mod.report([mixed])
    (ax,) = drawn["mixed-accuracy.png"]["axes"]
    assert "mean ± std over 1–3 seeds; hollow: one seed" in ax.get_title()
    from matplotlib.collections import PathCollection

    hollow = [c for c in ax.collections if isinstance(c, PathCollection) and len(c.get_facecolor())
              and (c.get_facecolor()[:, :3] == 1).all()]
    assert [list(c.get_offsets()[0]) for c in hollow] == [[0.3, 60.0]]
    assert plot.seeds_phrase([3, 3]) == "mean ± std over 3 seeds" and plot.seeds_phrase([2, 3]) == (
        "mean ± std over 2–3 seeds")
    # bars (a categorical axis): one-seed bars are hatched and labelled n=1
    bars = sweep_folder(tmp_path / "bars", "loss.kind", {"kl": [50.0, 52.0], "argmax": [40.0]})
    report_mod.report([bars])
    (ax,) = drawn["bars-accuracy.png"]["axes"]
    assert ax.get_xlabel() == "distillation loss" and "hatched, n=1: one seed" in ax.get_title()
    assert [p.get_hatch() for p in ax.patches] == [None, "//"]
    assert "40.0\nn=1" in [t.get_text() for t in ax.texts]


def test_footer_and_text_hold_no_absolute_path(tmp_path: Path, drawn, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = sweep_folder(tmp_path / "s", "train.lr", {0.1: [50.0], 0.3: [60.0]})
    out = (tmp_path / "reports" / "r").absolute()
    monkeypatch.chdir(tmp_path)
    text = report_mod.report([folder.absolute(), "s"], out=out,
                             command=f"aip report {folder.absolute()} s --out={out}").read_text()
    assert str(tmp_path) not in text
    footers = [f for d in drawn.values() for f in d["footer"]]
    assert footers and all(f == "aip report ../../s s --out=." for f in footers)
    assert "Made by `aip report ../../s s --out=.`" in text
    # the default command: the absolute paths given, relative to the report's folder
    report_mod.report([folder.absolute()], out=out)
    assert drawn["s-accuracy.png"]["footer"] == ["aip report ../../s --out ."]
    assert report_mod.shown_command("aip report 'my runs' --out rel", Path("/x")) == "aip report 'my runs' --out rel"


def text_box(annotation: Any, renderer: Any) -> Any:
    """Where ``annotation``'s text is drawn (not its leader line)."""
    from matplotlib.text import Text

    annotation.update_positions(renderer)
    return Text.get_window_extent(annotation, renderer)


def overlapping(boxes: list[Any]) -> list[tuple[int, int]]:
    return [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]


def test_close_scatter_labels_do_not_overlap() -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    # a cluster of eight sources within a few pixels of each other, and one far away
    xs = [1.0, 1.001, 1.002, 1.003, 1.004, 1.0, 1.002, 1.004, 2.0]
    ys = [50.0, 50.05, 49.95, 50.1, 50.0, 49.9, 50.2, 49.8, 60.0]
    texts = ["skimage:astronaut", "coffee", "chelsea", "hubble_deep_field", "brick", "camera", "rocket", "moon",
             "far"]
    ax.scatter(xs, ys)
    ax.set_xlim(0.9, 2.1)
    ax.set_ylim(45, 65)
    renderer = fig.canvas.get_renderer()
    # the old placement (every label 5 points up and right of its point) makes them collide
    naive = [ax.annotate(t, (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8)
             for x, y, t in zip(xs, ys, texts)]
    assert overlapping([text_box(a, renderer) for a in naive])
    for a in naive:
        a.remove()
    placed = plot.place_labels(ax, xs, ys, texts)
    assert [a.get_text() for a in placed] == texts
    assert overlapping([text_box(a, renderer) for a in placed]) == []
    plt.close(fig)


#: the source sweep of docs/analyses (PNG size in bytes, student top-1): points near each other, not on top
SOURCES = [(138773, 73.1, "astronaut"), (117187, 61.0, "chelsea"), (118783, 62.7, "coffee"), (70313, 38.9, "rocket"),
           (144565, 49.4, "hubble_deep_field"), (161030, 49.2, "immunohistochemistry"), (89196, 43.4, "retina"),
           (141154, 71.9, "camera"), (106634, 58.9, "brick"), (194247, 59.3, "gravel"), (43620, 45.3, "moon"),
           (115374, 59.4, "dead_leaves"), (204923, 37.3, "noise"), (49020, 65.2, "fractal")]


def test_labels_of_a_real_sweep_do_not_overlap() -> None:
    fig, ax = plt.subplots(figsize=(7, 5))
    xs, ys, texts = zip(*SOURCES)
    ax.errorbar(xs, ys, yerr=2, fmt="o")
    ax.set_ylim(5, 78)
    fig.tight_layout()
    placed = plot.place_labels(ax, xs, ys, texts)
    renderer = fig.canvas.get_renderer()
    assert overlapping([text_box(a, renderer) for a in placed]) == []
    plt.close(fig)


def test_scatter_names_the_measure_and_its_labels_do_not_overlap(tmp_path: Path, drawn) -> None:
    folder = sweep_folder(tmp_path / "src", "source.uri", {"a-long-name": [50.0], "b-long-name": [50.2],
                                                           "c": [70.0]},
                          stats={"a-long-name": 1000.0, "b-long-name": 1001.0, "c": 3000.0})
    report_mod.report([folder])
    (ax,) = drawn["src-vs-png_bytes.png"]["axes"]
    assert ax.get_xlabel() == "PNG size of the source (bytes)" and chance_ys(ax) == [10.0]
    boxes = [drawn["src-vs-png_bytes.png"]["boxes"][t] for t in ("a-long-name", "b-long-name", "c")]
    assert overlapping(boxes) == []


def test_readable_names_fall_back_to_the_key() -> None:
    assert plot.readable("student.kwargs.width") == "student width"
    assert plot.readable("augment.cutmix") == "CutMix probability"
    assert plot.readable("my_plugin.knob") == "my_plugin.knob"


def test_report_never_replaces_a_file_it_did_not_write(tmp_path: Path, drawn) -> None:
    drawn.save, drawn.dpi = True, 20
    other = sweep_folder(tmp_path / "h", "train.lr", {0.1: [50.0], 0.3: [60.0]})
    (other / "h-accuracy.pdf").write_text("my own drawing")
    before = sorted(os.listdir(other))
    with pytest.raises(AipError, match="h-accuracy.pdf is already there and aip did not write it") as e:
        report_mod.report([other])
    assert "\n" not in str(e.value)
    assert (other / "h-accuracy.pdf").read_text() == "my own drawing" and sorted(os.listdir(other)) == before


@pytest.mark.parametrize("name", ["confusion.png", "confusion.pdf"])
def test_eval_never_replaces_a_confusion_figure_it_did_not_write(tmp_path: Path, tiny_recipe, name: str) -> None:
    import torch

    from aip import recipe as R
    from aip.run import evaluate_checkpoint

    (tmp_path / name).write_text("my own figure")
    with pytest.raises(AipError, match=f"{name} is there but no metrics.json of aip's"):
        evaluate_checkpoint(R.load(tiny_recipe), tmp_path / "best.pt", device=torch.device("cpu"))
    assert (tmp_path / name).read_text() == "my own figure"
