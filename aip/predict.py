"""``aip predict``: classify files with a student, a batch of files to each forward pass, and print the result
as a table, JSON or CSV.

A folder stands for its files, in name order (not its sub-folders, nor hidden files); a file in it that the
model cannot read is skipped with one counted warning, while a file named on the command line must read.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import torch

from aip.errors import AipError, UsageError
from aip.folders import visible
from aip.student import Prediction, Student

FORMATS = ("table", "json", "csv")


def list_inputs(inputs: list[str]) -> list[tuple[str, bool]]:
    """``(file, came from a folder)`` for each file named in ``inputs``, folders expanded in name order."""
    listed: list[tuple[str, bool]] = []
    for item in inputs:
        folder = Path(item).expanduser()
        if not folder.is_dir():
            listed.append((item, False))
            continue
        # every entry but a folder: a FIFO, a device or a broken link is then skipped with what it is, not in silence
        files = sorted(p for p in folder.iterdir() if not p.is_dir() and visible(p.name))
        if not files:
            raise UsageError(f"folder {folder} holds no files to classify; give files, or a folder of them")
        listed += [(str(p), True) for p in files]
    return listed


def predict_files(student: Student, inputs: list[str], *, top_k: int = 5, batch_size: int = 32
                  ) -> tuple[list[Prediction], list[str], int]:
    """The predictions for the files of ``inputs`` (:func:`list_inputs`), ``batch_size`` files to a forward
    pass; returns ``(predictions, skipped, files listed)`` where ``skipped`` holds ``"FILE: why"`` for each file
    of a folder the model could not read.

    Raises:
        AipError: a file named directly cannot be read, or no file at all could be.
    """
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    listed = list_inputs(inputs)
    results: list[Prediction] = []
    skipped: list[str] = []
    for chunk in _chunks(listed, batch_size):
        named: list[tuple[str, torch.Tensor]] = []
        for item, in_folder in chunk:  # read every file of the batch first, so one forward pass serves them all
            try:
                named.append((item, student.views(item)))
            except AipError as e:
                if not in_folder:
                    raise
                skipped.append(f"{item}: {e}")
        results += student.predict_views(named, top_k=top_k)
    if not results:
        raise AipError(f"none of the {len(listed)} files could be read as the model's input (first: {skipped[0]})")
    return results, skipped, len(listed)


def _chunks(items: list[tuple[str, bool]], size: int) -> Iterator[list[tuple[str, bool]]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def render(results: list[Prediction], fmt: str = "table") -> str:
    """``results`` as text: ``table`` (one row per file: its top classes with probabilities, most likely
    first), ``json`` (a list of ``{"input", "top": [{"label", "prob"}]}``) or ``csv`` (one row per file and
    rank: ``input,rank,label,prob``, probabilities in [0, 1])."""
    if fmt == "json":
        return json.dumps([r.to_dict() for r in results], indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["input", "rank", "label", "prob"])
        for r in results:
            for rank, (label, p) in enumerate(zip(r.labels, r.probs), 1):
                writer.writerow([r.input, rank, label, f"{p:.6f}"])
        return buf.getvalue().rstrip("\n")
    if fmt != "table":
        raise UsageError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    k = max(len(r.labels) for r in results)
    rows = [["file", *(f"top-{i}" for i in range(1, k + 1))]]
    rows += [[r.input, *(f"{label} {100 * p:.2f} %" for label, p in zip(r.labels, r.probs))] for r in results]
    widths = [max(len(row[c]) for row in rows if c < len(row)) for c in range(k + 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])
