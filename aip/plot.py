"""Figures: the conventions every aip figure follows, and the plot of a run's curves (distillation loss and test
accuracy per evaluated epoch).

Every figure is written twice (:func:`save_figure`): a PNG at print resolution (:data:`PRINT_DPI`) and a PDF beside
it (same name, ``.pdf``) for a paper, both atomically (:mod:`aip.files`). Axes and titles name recipe keys and
source measures in words (:func:`readable`), accuracy axes carry the chance line (:func:`chance_line`), titles say
how many seeds a point averages (:func:`seeds_phrase`), and point labels in scatter plots are placed so that they
do not overlap (:func:`place_labels`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aip import files

#: PNG resolution: print quality (journals ask for 300 dpi for line art with text)
PRINT_DPI = 300
#: the PNG's pixel budget: a figure larger than this (a 1,000-class confusion matrix is 24 x 24 inches) is drawn
#: at a lower resolution so that the PNG stays a few megabytes; its PDF beside it keeps every detail
MAX_PIXELS = 40_000_000
#: the vector copy written beside every PNG
VECTOR_SUFFIX = ".pdf"

#: words for the recipe keys and source measures that figures name (a key not listed is shown as it is)
READABLE = {
    "student.arch": "student architecture",
    "student.kwargs.width": "student width",
    "student.kwargs.depth": "student depth",
    "teacher.arch": "teacher architecture",
    "teacher.fit.epochs": "teacher training epochs",
    "loss.kind": "distillation loss",
    "loss.temperature": "distillation temperature",
    "train.lr": "learning rate",
    "train.epochs": "training epochs",
    "train.batch_size": "batch size",
    "train.samples_per_epoch": "views per epoch",
    "train.view_pool": "view pool size",
    "train.view_select": "view selection policy",
    "train.seed": "seed",
    "source.uri": "source datum",
    "source.path": "source datum",
    "source.train_items": "labelled training items",
    "source.sprites": "sprites",
    "source.rotate": "source rotation",
    "source.degrees": "rotation (degrees)",
    "source.scale": "scale range",
    "source.shear": "shear",
    "source.photometric": "photometric jitter",
    "source.jitter_p": "colour jitter probability",
    "source.occlusion_p": "occlusion probability",
    "augment.cutmix": "CutMix probability",
    "augment.mixup": "MixUp",
    "augment.hflip": "horizontal flip",
    "augment.shift": "time shift",
    "augment.speed": "speed change",
    "augment.jitter_p": "colour jitter probability",
    "augment.noise_p": "noise probability",
    "augment.reverb_p": "reverb probability",
    "augment.freq_masks": "frequency masks",
    "augment.time_masks": "time masks",
    "variant": "variant",
    "run": "run",
    # source measures (aip.source_stats)
    "png_bytes": "PNG size of the source (bytes)",
    "jpeg_bytes": "JPEG size of the source (bytes)",
    "flac_bytes": "FLAC size of the source (bytes)",
    "pixel_entropy_bits": "pixel entropy of the source (bits)",
    "spectral_entropy_bits": "spectral entropy of the source (bits)",
    "patch_diversity": "patch diversity of the source",
    "teacher_entropy_bits": "teacher's entropy per view (bits)",
    "teacher_marginal_entropy_bits": "entropy of the teacher's mean prediction (bits)",
    "teacher_class_coverage": "share of classes the teacher names on some view",
    "teacher_t_stddev": "T. stddev of the teacher's predictions",
}


def readable(key: str) -> str:
    """The words a figure shows for the recipe key or source measure ``key`` (:data:`READABLE`), else ``key``."""
    return READABLE.get(key, key)


def vector_path(path: Path) -> Path:
    """The PDF written beside the PNG ``path``."""
    return Path(path).with_suffix(VECTOR_SUFFIX)


def figure_names(name: str) -> tuple[str, str]:
    """The file names :func:`save_figure` writes for the PNG ``name``: the PNG and its PDF."""
    return name, vector_path(Path(name)).name


def save_figure(fig: Any, path: Path, *, dpi: int = PRINT_DPI, vector: bool = True, palette: bool = False) -> Path:
    """Write a matplotlib figure to the PNG ``path`` at ``dpi`` (lower only past :data:`MAX_PIXELS`) and, with
    ``vector``, to the PDF :func:`vector_path` beside it, each atomically (:mod:`aip.files`); close the figure.
    Returns the PNG's path.

    ``palette`` writes the PNG with 256 colours (lines, markers and text: plots, not pictures): the same figure
    to the eye in about a third of the bytes (a 3300 x 1380 curve: 435 kB -> 127 kB), and faster to encode."""
    import matplotlib.pyplot as plt

    width, height = fig.get_size_inches()
    dpi = min(dpi, max(72, int(math.sqrt(MAX_PIXELS / max(width * height, 1e-9)))))
    try:
        png = io.BytesIO()
        if palette:
            _palette_png(fig, png, dpi=dpi)
        else:
            fig.savefig(png, format="png", dpi=dpi)  # matplotlib records the dpi in the PNG (pHYs)
        pdf = io.BytesIO()
        if vector:
            fig.savefig(pdf, format="pdf")
    finally:
        plt.close(fig)
    files.write_bytes(png.getvalue(), path)
    if vector:
        files.write_bytes(pdf.getvalue(), vector_path(path))
    return path


def _palette_png(fig: Any, out: io.BytesIO, *, dpi: int) -> None:
    """``fig`` rendered at ``dpi`` as a 256-colour PNG that records its dpi."""
    from PIL import Image

    raw = io.BytesIO()
    fig.savefig(raw, format="rgba", dpi=dpi)
    data = raw.getvalue()
    pixels = len(data) // 4
    width_in, height_in = fig.get_size_inches()
    # matplotlib's canvas is int(size x dpi) pixels; the float product may land one either side of it
    guess = round(width_in * dpi)
    width = next((w for w in (guess, guess - 1, guess + 1) if w > 0 and pixels % w == 0
                  and abs(pixels // w - height_in * dpi) <= 1), None)
    if width is None:  # cannot happen with the Agg canvas; a full-colour PNG rather than a wrong picture
        fig.savefig(out, format="png", dpi=dpi)
        return
    image = Image.frombuffer("RGBA", (width, pixels // width), data, "raw", "RGBA", 0, 1).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
        out, format="PNG", dpi=(dpi, dpi))


def seeds_phrase(ns: Sequence[int], *, std: bool = True, one: str = "hollow") -> str:
    """How many seeds the points of a figure average, for its title: "mean ± std over 3 seeds" ("mean over ..."
    without ``std``: a curve of means), "one seed per point", or, when the counts differ, the range and how
    one-seed points are drawn (``one``: hollow markers, hatched bars)."""
    ns = [n for n in ns if n > 0]
    if not ns or max(ns) == 1:
        return "one seed per point"
    lo, hi = min(ns), max(ns)
    what = "mean ± std" if std else "mean"
    if lo == hi:
        return f"{what} over {hi} seeds"
    return f"{what} over {lo}–{hi} seeds" + (f"; {one}: one seed" if lo == 1 else "")


def chance_line(ax: Any, chance: float | None) -> Any:
    """The dashed, labelled line at chance accuracy (100 / classes, %) on the accuracy axis ``ax``; None when
    ``chance`` is unknown. The line's gid is ``"chance"``."""
    if chance is None or not math.isfinite(chance) or chance <= 0:
        return None
    return ax.axhline(chance, color="0.4", ls="--", lw=1, gid="chance", label=f"chance ({chance:.3g} %)")


def footer(fig: Any, text: str) -> Any:
    """The command that made ``fig``, in small grey type at its bottom left; returns the text artist."""
    return fig.text(0.01, 0.01, text, fontsize=8, color="0.35", family="monospace", ha="left", va="bottom",
                    gid="footer")


#: where a point's label may go, tried in this order: offsets in points (dx, dy) from the point
_NEAR = [(6, 5), (6, -5), (-6, 5), (-6, -5)]
_SPREAD = [(dx, s * dy) for dy in range(16, 16 * 9, 12) for s in (1, -1) for dx in (6, -6)]


def place_labels(ax: Any, xs: Sequence[float], ys: Sequence[float], texts: Sequence[str], *,
                 fontsize: float = 8) -> list[Any]:
    """Annotate each point ``(xs[i], ys[i])`` with ``texts[i]`` where the label overlaps no label placed
    before it and no point, inside the axes where there is room: beside the point if it can, else further up or
    down with a thin leader line.

    aip keeps this small greedy placement instead of adjustText (not a dependency): a sweep's scatter has a
    handful of points. Call it after the axes' limits and the figure's layout are final (positions are measured
    in display space). Returns the annotations in the order of ``texts``."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    to_px = fig.dpi / 72
    frame = ax.get_window_extent(renderer)
    centres = ax.transData.transform(list(zip(xs, ys))) if len(xs) else []
    taken = [Bbox.from_bounds(cx - 4 * to_px, cy - 4 * to_px, 8 * to_px, 8 * to_px) for cx, cy in centres]

    def label(i: int, dx: float, dy: float) -> tuple[Any, Any]:
        ann = ax.annotate(texts[i], (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points",
                          ha="left" if dx > 0 else "right", va="bottom" if dy > 0 else "top", fontsize=fontsize,
                          annotation_clip=False,
                          arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"} if abs(dy) > 8 else None)
        ann.update_positions(renderer)  # where its offset puts the text (else it is measured at the origin)
        return ann, Text.get_window_extent(ann, renderer)  # the text alone, not its leader line

    made: dict[int, Any] = {}
    for i in sorted(range(len(texts)), key=lambda i: (ys[i], xs[i])):
        inside = outside = None
        for dx, dy in [*_NEAR, *_SPREAD]:
            ann, box = label(i, dx, dy)
            if any(box.overlaps(t) for t in taken):
                ann.remove()
            elif frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1:
                inside = (ann, box)
                break
            elif outside is None:  # free but past the frame: kept in case no free place inside is found
                outside = (ann, box)
            else:
                ann.remove()
        chosen = inside or outside or label(i, *_NEAR[0])  # nowhere free within reach: beside it, overlapping
        if inside and outside:
            outside[0].remove()
        made[i] = chosen[0]
        taken.append(chosen[1])
    return [made[i] for i in range(len(texts))]


def plot_curves(history: list[dict[str, Any]], path: Path, *, title: str, teacher_top1: float | None = None,
                steps: list[dict[str, Any]] | None = None, views_per_step: float | None = None,
                chance: float | None = None) -> Path:
    """A run's ``curves.png`` (and its PDF): left, the per-step training loss from ``steps`` (the rows of
    ``steps.jsonl``: raw and faint, and smoothed) with the learning rate on its own axis; right, the student's
    test top-1 at each evaluation (``history``, the rows of ``metrics.jsonl``) with the teacher's and chance.
    Both against views seen (step x ``views_per_step``), or against the step when that is unknown. Without
    step rows (an older run) the left panel shows the training epochs' mean loss at each evaluation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aip.state import train_loss_epoch

    known = bool(views_per_step and views_per_step > 0)
    scale = views_per_step if known else 1

    def x(rows: list[dict[str, Any]]) -> list[float]:
        return [row["step"] * scale for row in rows]

    xlabel = "views of the datum seen" if known else "optimiser step"
    from matplotlib.ticker import EngFormatter

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    ax_loss.xaxis.set_major_formatter(EngFormatter(sep=""))  # 40k views, not 40000
    trained = [r for r in steps or [] if isinstance(r.get("loss"), int | float) and "step" in r]
    if trained:
        loss = [r["loss"] for r in trained]
        ax_loss.plot(x(trained), loss, color="C0", alpha=0.25, lw=0.8, label="per logged step")
        ax_loss.plot(x(trained), _smoothed(loss), color="C0", lw=1.6, label="smoothed (EMA 0.9)")
        paced = [r for r in trained if isinstance(r.get("lr"), int | float)]
        if paced:
            ax_lr = ax_loss.twinx()
            ax_lr.plot(x(paced), [r["lr"] for r in paced], color="C1", ls=":", lw=1.2, label="learning rate")
            ax_lr.set_ylabel("learning rate", color="C1")
            ax_lr.tick_params(axis="y", colors="C1")
            ax_lr.set_ylim(bottom=0)
    else:  # a run from before steps.jsonl: the training epochs' mean loss
        epochs = [r for r in history if isinstance(train_loss_epoch(r), int | float)]
        ax_loss.plot(x(epochs), [train_loss_epoch(r) for r in epochs], marker="o", label="epoch mean")
    ax_loss.set(xlabel=xlabel, ylabel="distillation loss on training views", title="training")
    ax_loss.legend(loc="upper right", fontsize=8)
    evaluated = [r for r in history if isinstance(r.get("top1"), int | float)]
    ax_acc.plot(x(evaluated), [r["top1"] for r in evaluated], marker="o", label="student top-1")
    if teacher_top1 is not None:
        ax_acc.axhline(teacher_top1, color="gray", linestyle="--", label="teacher top-1")
    chance_line(ax_acc, chance)
    ax_acc.set(xlabel=xlabel, ylabel="top-1 accuracy on the test split (%)", title="student at each evaluation")
    ax_acc.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def _smoothed(values: list[float], weight: float = 0.9) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased so that the first points are not
    pulled towards zero."""
    out, mean = [], 0.0
    for i, v in enumerate(values, start=1):
        mean = weight * mean + (1 - weight) * v
        out.append(mean / (1 - weight ** i))
    return out
