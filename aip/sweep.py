"""``aip sweep``: many runs of one base recipe, over axes of recipe keys and seeds, each a normal run directory.

A sweep file (TOML) names a base recipe and the axes::

    description = "Temperature of the distillation loss"
    base = "../fashion-mnist.toml"        # relative to this file
    mode = "grid"                         # every combination of the axes; "zip": the i-th values together
    seeds = 3                             # train.seed = 0, 1, 2 (or a list: [0, 5]); absent: the recipe's seed
    set = ["train.epochs=4"]              # overrides shared by every variant
    source_stats = false                  # true: write source_stats.json (aip.source_stats) beside each run

    [[axis]]
    key = "loss.temperature"
    values = [1.0, 4.0, 8.0]
    labels = ["T1", "T4", "T8"]           # optional: the variants' folder names (default: from the values)

With ``mode = "zip"``, ``names = ["full", "no-flip", ...]`` names each zipped point (a leave-one-out sweep
changes a different key in each variant: every axis lists the default except where its variant drops it).

    [report]
    scatter = ["png_bytes"]               # aip report: accuracy against these source_stats.json measures

    [slurm]                               # optional: submitit's executor parameters for --submitit
    timeout_min = 600

Each variant is the base recipe with ``--set KEY=VALUE`` overrides, run into ``OUT/NAME`` (a stable, readable
name such as ``temperature-T4_seed-1``), holding its resolved recipe and metrics like any ``aip run``. The
sweep's folder also holds ``sweep.json`` (the expanded plan), which :mod:`aip.report` reads.

Re-running a sweep skips the variants whose ``metrics.json`` says ``finished`` and resumes the others from
their ``last.pt``. With ``reuse`` (folders of other sweeps or runs), a variant not started yet whose resolved
recipe equals a finished run's there (seed included) is copied from it instead of run again: sweeps of one
recipe share its default row. The copy's ``metrics.json`` names the run it came from (``copied_from``).

A variant that fails is reported at the end and never stops the others; a stop request (Ctrl-C, SIGTERM:
:class:`~aip.interrupts.Interrupted`) stops the whole sweep, its run's checkpoint kept.

A sweep folder belongs to one sweep at a time: ``aip sweep`` holds the lock of ``OUT/.aip-sweep`` while it
writes the plan and runs its variants (:func:`aip.rundir.locked`, the lock a run holds on its own folder:
released when the process ends, however it ends), so a second sweep into the same folder is refused at once,
in one line, before it writes anything; the first one's runs are untouched.

Where variants run: in this process one after another (``device``); one per device in parallel
subprocesses of ``aip run`` (``devices``, a ``concurrent.futures`` thread per device); or as a SLURM job
array through ``submitit`` (``submitit=True``, the optional extra ``aip[cluster]``).
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

from aip import files, rundir
from aip import recipe as recipe_mod
from aip.errors import AipError, UsageError, one_line
from aip.interrupts import Interrupted

PLAN = "sweep.json"
ERROR_LOG = "sweep-error.txt"
LOCK = ".aip-sweep"  # the sweep folder's lock (aip.rundir.locked)
_TOP_KEYS = {"description", "name", "base", "mode", "seeds", "set", "source_stats", "axis", "names", "report",
             "slurm"}
_AXIS_KEYS = {"key", "values", "labels"}
_REPORT_KEYS = {"scatter"}


@dataclass(frozen=True)
class Axis:
    """One recipe key and the values it takes."""

    key: str
    values: list[Any]
    labels: list[str]


@dataclass(frozen=True)
class Variant:
    """One run of the sweep: its folder name, its axis values and the overrides that make its recipe."""

    name: str
    point: dict[str, Any]
    labels: dict[str, str]
    seed: int | None
    overrides: list[str]


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file (or ``aip sweep RECIPE --axis ...``)."""

    name: str
    base: Path
    axes: list[Axis]
    mode: Literal["grid", "zip"] = "grid"
    seeds: list[int] | None = None
    common: list[str] = field(default_factory=list)
    source_stats: bool = False
    scatter: list[str] = field(default_factory=list)
    slurm: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    path: Path | None = None
    names: list[str] | None = None

    def variants(self) -> list[Variant]:
        """Every run of the sweep, in order (axes in the file's order, seeds innermost)."""
        if self.mode == "zip":
            points = list(zip(*(zip(a.values, a.labels) for a in self.axes)))
        else:
            points = list(itertools.product(*(list(zip(a.values, a.labels)) for a in self.axes)))
        short = _short_names([a.key for a in self.axes])
        out, seen = [], {}
        for i, point in enumerate(points):
            labels = {a.key: lab for a, (_, lab) in zip(self.axes, point)}
            if self.names:
                labels = {"variant": self.names[i]}
            for seed in self.seeds if self.seeds is not None else [None]:
                parts = [self.names[i]] if self.names else [f"{s}-{label}" for s, (_, label) in zip(short, point)]
                if seed is not None:
                    parts.append(f"seed-{seed}")
                name = "_".join(parts) or "base"
                if name in seen:
                    raise UsageError(f"sweep {self.name}: two variants would share the folder {name!r}; "
                                     "give the axis distinct `labels`")
                seen[name] = True
                overrides = [*self.common, *(_override(a.key, v) for a, (v, _) in zip(self.axes, point))]
                if seed is not None:
                    overrides.append(f"train.seed={seed}")
                values = {a.key: v for a, (v, _) in zip(self.axes, point)}
                if self.names:
                    values = {"variant": self.names[i], **values}
                out.append(Variant(name=name, point=values, labels=labels, seed=seed, overrides=overrides))
        return out

    def plan(self, out: Path, *, command: str = "") -> dict[str, Any]:
        """What ``sweep.json`` holds: the sweep and its expanded variants."""
        return {
            "name": self.name, "description": self.description, "base": str(self.base), "mode": self.mode,
            # the report's axes: the named variants of a zip, else the swept keys
            "axes": ([{"key": "variant", "values": self.names, "labels": self.names}] if self.names else
                     [{"key": a.key, "values": a.values, "labels": a.labels} for a in self.axes]),
            "keys": [{"key": a.key, "values": a.values, "labels": a.labels} for a in self.axes],
            "seeds": self.seeds, "set": self.common, "source_stats": self.source_stats,
            "report": {"scatter": self.scatter}, "command": command,
            "variants": [{"name": v.name, "point": v.point, "labels": v.labels, "seed": v.seed,
                          "command": shlex.join(run_command(self, v, out))} for v in self.variants()],
        }


# ------------------------------------------------------------------------------------------------ parsing
def _short_names(keys: list[str]) -> list[str]:
    """The last part of each key (``loss.temperature`` -> ``temperature``), or the whole key where two clash."""
    last = [k.split(".")[-1] for k in keys]
    return [s if last.count(s) == 1 else k.replace(".", "-") for s, k in zip(last, keys)]


def slug(value: Any) -> str:
    """A short, readable folder-name part for an axis value (``skimage:astronaut`` -> ``astronaut``)."""
    if isinstance(value, list | tuple):
        text = "-".join(slug(v) for v in value)
    elif isinstance(value, str):
        text = re.split(r"[/:]", value.rstrip("/"))[-1] or value
        text = re.sub(r"\.(png|jpe?g|tiff?|wav|flac|mp4)$", "", text, flags=re.IGNORECASE)
    elif isinstance(value, bool):
        text = "on" if value else "off"
    else:
        return re.sub(r"[^A-Za-z0-9._+-]+", "-", str(value))[:40] or "x"  # a number keeps its sign
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-")[:40] or "x"


def toml_value(value: Any) -> str:
    """``value`` as one line of TOML (strings, numbers, booleans, arrays and inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def _override(key: str, value: Any) -> str:
    """``key=value`` with the value written as TOML (what ``--set`` reads back)."""
    return f"{key}={toml_value(value)}"


def split_values(text: str) -> list[str]:
    """``"1,2,[0.5,1.0]"`` -> ``["1", "2", "[0.5,1.0]"]``: commas inside brackets or quotes do not split."""
    out, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    out.append(cur.strip())
    return [v for v in out if v]


def parse_axis(text: str) -> Axis:
    """``--axis KEY=V1,V2,...`` -> an :class:`Axis` (each value read as TOML, else as a string)."""
    key, sep, rest = text.partition("=")
    values = [recipe_mod.parse_override(f"{key}={v}")[1] for v in split_values(rest)] if sep else []
    if not key.strip() or not values:
        raise UsageError(f"--axis {text!r} must look like KEY=V1,V2 (e.g. --axis loss.temperature=1,4,8)")
    return Axis(key=key.strip(), values=values, labels=[slug(v) for v in values])


def _seeds(value: Any, where: str) -> list[int] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        if len(set(value)) != len(value):
            raise UsageError(f"{where}: seeds {value} repeat a seed; list each seed once")
        return list(value)
    raise UsageError(f"{where}: seeds must be a count >= 1 (3 means 0, 1, 2) or a list of integers, not {value!r}")


def _axis(data: Any, where: str) -> Axis:
    if not isinstance(data, dict):
        raise UsageError(f"{where}: each [[axis]] is a table with key and values")
    unknown = set(data) - _AXIS_KEYS
    if unknown:
        raise UsageError(f"{where}: unknown [[axis]] key {sorted(unknown)[0]!r}; allowed: key, values, labels")
    key, values = data.get("key"), data.get("values")
    if not isinstance(key, str) or "." not in key:
        raise UsageError(f"{where}: [[axis]] key must be a recipe key like 'loss.temperature', not {key!r}")
    if not isinstance(values, list) or not values:
        raise UsageError(f"{where}: axis {key}: values must be a non-empty list")
    labels = data.get("labels", [slug(v) for v in values])
    if (not isinstance(labels, list) or len(labels) != len(values)
            or not all(isinstance(s, str) and s for s in labels)):
        raise UsageError(f"{where}: axis {key}: labels must be one non-empty string per value ({len(values)})")
    seen: dict[str, Any] = {}
    for label, value in zip(labels, values):
        if seen.setdefault(label, value) != value:
            raise UsageError(f"{where}: axis {key}: two values get the label {label!r}; give distinct `labels`")
    bad = [s for s in labels if not re.fullmatch(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,39}", s)]
    if bad:
        raise UsageError(f"{where}: axis {key}: label {bad[0]!r} is not a plain folder name (letters, digits, . _ + -)")
    return Axis(key=key, values=values, labels=labels)


def from_dict(data: dict[str, Any], *, path: Path, extra_axes: Sequence[Axis] = (), seeds: Any = None,
              common: Sequence[str] = ()) -> Sweep:
    """A :class:`Sweep` from sweep-file data read from ``path`` (relative ``base`` paths start at its folder)."""
    where = f"sweep file {path}"
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise UsageError(f"{where}: unknown key {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(_TOP_KEYS))}")
    base = data.get("base")
    if not isinstance(base, str) or not base:
        raise UsageError(f"{where}: base must name the base recipe (e.g. base = \"../fashion-mnist.toml\")")
    base_path = Path(os.path.normpath(base if Path(base).is_absolute() else path.parent / base))  # no a/../b
    if not base_path.is_file():
        raise UsageError(f"{where}: base recipe {base_path} does not exist")
    mode = data.get("mode", "grid")
    if mode not in ("grid", "zip"):
        raise UsageError(f"{where}: mode must be 'grid' (every combination) or 'zip' (values side by side)")
    axes_data = data.get("axis", [])
    if not isinstance(axes_data, list):
        raise UsageError(f"{where}: write each axis as an [[axis]] table")
    axes = [*(_axis(a, where) for a in axes_data), *extra_axes]
    if not axes and seeds is None and data.get("seeds") is None:
        raise UsageError(f"{where}: no [[axis]] and no seeds: nothing to sweep")
    keys = [a.key for a in axes]
    if len(set(keys)) != len(keys):
        raise UsageError(f"{where}: axis {next(k for k in keys if keys.count(k) > 1)} appears twice")
    if mode == "zip" and len({len(a.values) for a in axes}) > 1:
        raise UsageError(f"{where}: mode = 'zip' needs axes of equal length, got {[len(a.values) for a in axes]}")
    names = data.get("names")
    if names is not None:
        if mode != "zip" or not axes:
            raise UsageError(f"{where}: names name the points of mode = 'zip' (with axes); remove names or set "
                             "mode = 'zip'")
        if (not isinstance(names, list) or len(names) != len(axes[0].values) or len(set(names)) != len(names)
                or not all(isinstance(n, str) and re.fullmatch(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,39}", n)
                           for n in names)):
            raise UsageError(f"{where}: names must be one distinct plain folder name per zipped point "
                             f"({len(axes[0].values)})")
    shared = data.get("set", [])
    if not isinstance(shared, list) or not all(isinstance(s, str) for s in shared):
        raise UsageError(f"{where}: set must be a list of 'section.key=value' strings")
    report = data.get("report", {})
    if not isinstance(report, dict) or set(report) - _REPORT_KEYS:
        raise UsageError(f"{where}: [report] allows only scatter (a list of source_stats.json measures)")
    scatter = report.get("scatter", [])
    if not isinstance(scatter, list) or not all(isinstance(s, str) for s in scatter):
        raise UsageError(f"{where}: report.scatter must be a list of measure names (e.g. ['png_bytes'])")
    stats = data.get("source_stats", bool(scatter))
    if not isinstance(stats, bool):
        raise UsageError(f"{where}: source_stats must be true or false")
    if scatter and not stats:
        raise UsageError(f"{where}: report.scatter plots source_stats.json measures; set source_stats = true")
    slurm = data.get("slurm", {})
    if not isinstance(slurm, dict):
        raise UsageError(f"{where}: [slurm] must be a table of submitit executor parameters")
    for key in ("name", "description"):
        if not isinstance(data.get(key, ""), str):
            raise UsageError(f"{where}: {key} must be a string")
    return Sweep(name=data.get("name") or path.stem, base=base_path, axes=axes, mode=mode,
                 seeds=_seeds(seeds if seeds is not None else data.get("seeds"), where),
                 common=[*shared, *common], source_stats=stats, scatter=scatter, slurm=slurm,
                 description=data.get("description", ""), path=path, names=names)


def load(path: str | Path, *, axes: Sequence[str] = (), seeds: int | None = None,
         overrides: Sequence[str] = ()) -> Sweep:
    """A sweep file, or a recipe file made a sweep by ``axes`` (``KEY=V1,V2`` strings) and ``seeds``.

    Raises ``AipError`` (one line) for a bad sweep file; variants are not validated here (:func:`validate`).
    """
    path = Path(path)
    data = recipe_mod.read_toml(path)
    extra = [parse_axis(a) for a in axes]
    if "modality" in data:  # a recipe: the sweep is the command line's axes and seeds
        data = {"base": path.name, "name": f"{path.stem}-sweep"}
        if not extra and seeds is None:
            raise UsageError(f"{path} is a recipe; add --axis KEY=V1,V2 and/or --seeds N (or pass a sweep file)")
    return from_dict(data, path=path, extra_axes=extra, seeds=seeds, common=overrides)


def validate(sweep: Sweep) -> list[Variant]:
    """Expand and load every variant's recipe (as ``aip check`` would); the first bad one is an ``AipError``."""
    variants = sweep.variants()
    for v in variants:
        try:
            recipe_mod.load(sweep.base, v.overrides)
        except AipError as e:  # a bad key or value, or the modality's own checks (an unknown dataset)
            raise type(e)(f"sweep {sweep.name}: variant {v.name}: {e}") from None  # a usage error stays one
    return variants


# ------------------------------------------------------------------------------------------------ running
def finished(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a finished run (its ``metrics.json`` says so)."""
    try:
        return bool(json.loads((run_dir / "metrics.json").read_text()).get("finished"))
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def _finished_runs(folders: Sequence[Path], *, exclude: Path) -> dict[Path, recipe_mod.Recipe]:
    """The finished runs in ``folders`` (each a run folder, or a folder of them such as a sweep's), with their
    resolved recipes; runs under ``exclude`` (the sweep's own folder) and unreadable recipes are left out."""
    runs: dict[Path, recipe_mod.Recipe] = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise UsageError(f"--reuse {folder}: not a folder; name a sweep's folder or a run folder")
        for d in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
            if d.resolve().is_relative_to(exclude.resolve()) or not finished(d):
                continue
            try:
                runs[d] = recipe_mod.load(d / "recipe.toml")
            except (AipError, OSError):  # a run of another version or another plugin: not a donor
                continue
    return runs


def reusable(sweep: Sweep, variant: Variant, run_dir: Path, donors: dict[Path, recipe_mod.Recipe]) -> Path | None:
    """A finished run among ``donors`` whose resolved recipe equals ``variant``'s, if ``run_dir`` is not started
    (a started run resumes instead); else None. Equal recipes, seed included, are the same experiment: what
    differs is floating-point non-determinism and the machine (its ``metrics.json`` names the device)."""
    if (run_dir / "last.pt").exists() or (run_dir / "metrics.json").exists():
        return None
    wanted = recipe_mod.load(sweep.base, variant.overrides)
    return next((d for d, r in donors.items() if r == wanted), None)


def copy_run(src: Path, dst: Path) -> None:
    """Copy run folder ``src`` to ``dst``; its ``metrics.json`` then says where it came from (``copied_from``)
    and where it is (``run_dir``). The metrics are written last, so an interrupted copy is not finished."""
    shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("metrics.json"))
    metrics = json.loads((src / "metrics.json").read_text())
    metrics.update(copied_from=str(src), run_dir=str(dst))
    files.write_text(json.dumps(metrics, indent=2), dst / "metrics.json")


def run_command(sweep: Sweep, variant: Variant, out: Path, *, device: str = "auto") -> list[str]:
    """The ``aip run`` command line of ``variant``."""
    cmd = ["aip", "run", str(sweep.base), "--out", str(out / variant.name), "--device", device]
    for o in variant.overrides:
        cmd += ["--set", o]
    return cmd


def run_in_process(sweep: Sweep, variant: Variant, run_dir: Path, device: str) -> None:
    """Run one variant here (resuming from its ``last.pt`` if there is one)."""
    from aip.hardware import resolve_device
    from aip.run import run

    run(recipe_mod.load(sweep.base, variant.overrides), out=run_dir, device=resolve_device(device))


def run_subprocess(cmd: list[str], log: Path) -> int:
    """Run an ``aip ...`` command line as ``python -m aip ...``, its output into ``log``; its exit code."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        return subprocess.run([sys.executable, "-m", *cmd], stdout=f, stderr=subprocess.STDOUT).returncode


def run_array_task(cmd: list[str]) -> None:
    """One task of a SLURM job array (runs on the cluster node): the variant's ``aip run``."""
    subprocess.run([sys.executable, "-m", *cmd], check=True)


def slurm_executor(folder: Path, parameters: dict[str, Any]) -> Any:
    """submitit's executor for SLURM (``--submitit``), its logs under ``folder``."""
    try:
        import submitit
    except ImportError:
        raise AipError("--submitit needs the submitit package: pip install 'aip[cluster]'") from None
    executor = submitit.AutoExecutor(folder=folder)
    executor.update_parameters(**parameters)
    return executor


class SweepStopped(Interrupted):
    """A run of the sweep was stopped by a signal (its checkpoint kept); the sweep stopped with it."""

    def __init__(self, signum: int = 2) -> None:
        Exception.__init__(self, "sweep stopped: a run was interrupted; run the same command to resume")
        self.step, self.signum = 0, signum


@dataclass
class SweepResult:
    """What happened to each variant: ``done`` (ran to the end now), ``skipped`` (finished before),
    ``failed`` (name, one-line reason), ``submitted`` (name, job id) for a cluster, ``copied`` (from a finished
    run with the same resolved recipe, ``reuse``)."""

    out: Path
    variants: list[Variant]
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    submitted: list[tuple[str, str]] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"sweep {self.out}: {len(self.variants)} variants, {len(self.done)} run, "
                 f"{len(self.skipped)} already finished, {len(self.failed)} failed"
                 + (f", {len(self.copied)} copied" if self.copied else "")
                 + (f", {len(self.submitted)} submitted" if self.submitted else "")]
        lines += [f"  FAILED {name}: {why}" for name, why in self.failed]
        lines += [f"  submitted {name}: job {job}" for name, job in self.submitted]
        return "\n".join(lines)


def _one_line(e: BaseException) -> str:
    text = one_line(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def sweep(spec: Sweep | str | Path, *, out: Path | None = None, device: str = "auto",
          devices: Sequence[str] = (), submitit: bool = False, dry_run: bool = False, command: str = "",
          only: Sequence[str] = (), echo: Callable[[str], None] = print, reuse: Sequence[Path] = (),
          runner: Callable[[Sweep, Variant, Path, str], None] | None = None) -> SweepResult:
    """Run (or with ``dry_run``, list) every variant of ``spec`` that has not finished; see the module doc.

    ``only`` keeps the variants whose folder name matches one of these shell patterns (``select-*``); the plan
    in ``sweep.json`` still lists them all, so a later run without ``only`` fills in the rest.
    ``reuse``: folders whose finished runs (``DIR/*/``, or ``DIR`` itself) a variant not started yet may be
    copied from when their resolved recipes are equal (:func:`reusable`).
    ``runner`` replaces :func:`run_in_process` (tests). ``devices`` runs one variant per device at a time in
    subprocesses; ``submitit`` sends the unfinished variants to SLURM as one job array and returns at once.
    """
    s = spec if isinstance(spec, Sweep) else load(spec)
    out = Path(out) if out is not None else Path("runs") / "sweeps" / s.name
    variants = select(validate(s), only, sweep_name=s.name)
    result = SweepResult(out=out, variants=variants)
    donors = _finished_runs(reuse, exclude=out)
    if dry_run:
        for v in variants:
            src = None if finished(out / v.name) or not donors else reusable(s, v, out / v.name, donors)
            state = "finished" if finished(out / v.name) else f"to copy from {src}" if src else "to run"
            echo(f"{v.name}  ({state})\n  {shlex.join(run_command(s, v, out, device=device))}")
        return result
    files.check_writable(out / PLAN)  # a sweep folder that is a file, or lies under one: one line
    with rundir.locked(out, marker=LOCK, what="aip sweep"):  # a second sweep into `out` stops here
        files.write_text(json.dumps(s.plan(out, command=command), indent=2), out / PLAN)
        todo = []
        for v in variants:
            if finished(out / v.name):
                result.skipped.append(v.name)
            elif donors and (src := reusable(s, v, out / v.name, donors)) is not None:
                copy_run(src, out / v.name)
                echo(f"sweep {s.name}: {v.name} copied from {src} (the same resolved recipe)")
                result.copied.append(v.name)
            else:
                todo.append(v)
        if submitit:
            _submit(s, todo, out, result)
        elif devices:
            _on_devices(s, todo, out, list(devices), result, echo)
        else:
            for v in todo:
                echo(f"sweep {s.name}: {v.name} ({len(result.done) + len(result.failed) + 1}/{len(todo)} to run)")
                try:
                    (runner or run_in_process)(s, v, out / v.name, device)
                except Interrupted:  # a stop request stops the sweep; the run's checkpoint is kept
                    raise
                except Exception as e:  # noqa: BLE001 - one variant's failure must not stop the others
                    # an error aip names is its line; anything else (a bug to report) its traceback
                    why = f"{_one_line(e)}\n" if isinstance(e, AipError) else traceback.format_exc()
                    _log_failure(out / v.name, why)
                    result.failed.append((v.name, _one_line(e)))
                    continue
                _finish(v, out, result)
        if s.source_stats and not submitit:
            _source_stats(s, variants, out, device if not devices else devices[0], result)
        return result


def _log_failure(run_dir: Path, text: str) -> None:
    """Write ``text`` to ``run_dir/sweep-error.txt`` where that can be done: never into a variant's path that is a
    file or a link (a user's), and a log that cannot be written must not stop the sweep (the failure is in its
    summary anyway)."""
    if os.path.lexists(run_dir) and (run_dir.is_symlink() or not run_dir.is_dir()):
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        files.write_text(text, run_dir / ERROR_LOG)
    except (OSError, AipError):
        pass


def select(variants: list[Variant], patterns: Sequence[str], *, sweep_name: str = "") -> list[Variant]:
    """The variants whose name matches one of ``patterns`` (shell-style, ``fnmatch``); all of them when none are
    given. A pattern that matches nothing is an error: it is almost always a typo."""
    if not patterns:
        return variants
    for p in patterns:
        if not any(fnmatch.fnmatchcase(v.name, p) for v in variants):
            names = ", ".join(v.name for v in variants[:6]) + (", ..." if len(variants) > 6 else "")
            raise UsageError(f"sweep {sweep_name}: --only {p!r} matches no variant; the variants are {names} "
                             "(see --dry-run)")
    return [v for v in variants if any(fnmatch.fnmatchcase(v.name, p) for p in patterns)]


def _finish(v: Variant, out: Path, result: SweepResult) -> None:
    if finished(out / v.name):
        result.done.append(v.name)
    else:
        result.failed.append((v.name, f"no finished metrics.json in {out / v.name}"))


def _on_devices(s: Sweep, todo: list[Variant], out: Path, devices: list[str], result: SweepResult,
                echo: Callable[[str], None]) -> None:
    """One worker thread per device, each running its share of the variants (round robin) one after another
    as ``aip run`` subprocesses; a stop (exit code 130/143) ends that worker's share."""

    def work(device: str, share: list[Variant]) -> list[tuple[Variant, int]]:
        codes = []
        for v in share:
            echo(f"sweep {s.name}: {v.name} on {device}")
            rc = run_subprocess(run_command(s, v, out, device=device), out / v.name / "log.txt")
            codes.append((v, rc))
            if rc in (130, 143):
                break
        return codes

    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        futures = [pool.submit(work, d, todo[i::len(devices)]) for i, d in enumerate(devices)]
        outcomes = [pair for f in futures for pair in f.result()]
    stopped = 0
    for v, rc in outcomes:
        if rc == 0:
            _finish(v, out, result)
        else:
            stopped = rc - 128 if rc in (130, 143) else stopped
            result.failed.append((v.name, f"aip run exited with code {rc}; see {out / v.name / 'log.txt'}"))
    if stopped:
        raise SweepStopped(stopped)


def _submit(s: Sweep, todo: list[Variant], out: Path, result: SweepResult) -> None:
    if not todo:
        return
    executor = slurm_executor(out / "slurm", {"name": s.name, **s.slurm})
    jobs = executor.map_array(run_array_task, [run_command(s, v, out) for v in todo])
    result.submitted.extend((v.name, str(job.job_id)) for v, job in zip(todo, jobs))


def _source_stats(s: Sweep, variants: list[Variant], out: Path, device: str, result: SweepResult) -> None:
    """``source_stats.json`` beside each run that has finished and has none yet (after the run, so a trained
    teacher is cached and its measures can be taken)."""
    from aip.hardware import resolve_device
    from aip.source_stats import FILE, source_stats

    for v in variants:
        if not finished(out / v.name) or (out / v.name / FILE).is_file():
            continue
        try:
            stats = source_stats(recipe_mod.load(s.base, v.overrides), device=resolve_device(device))
        except Exception as e:  # noqa: BLE001 - a measure that fails must not lose the sweep's runs
            result.failed.append((v.name, f"source-stats: {_one_line(e)}"))
            continue
        files.write_text(json.dumps(stats, indent=2), out / v.name / FILE)
