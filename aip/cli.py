"""The ``aip`` command line. Each command parses its arguments and calls one function of :mod:`aip.run`.

A problem aip can name prints one line (``error: ...``) without a traceback and exits with 2 for a usage error
(the command line or the recipe) or 1 for a failure at run time (:mod:`aip.errors`); an interrupted command
prints what was kept and exits with 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aip.errors import AipError, one_line, path_error_code, path_error_line

if TYPE_CHECKING:
    from aip.recipe import Recipe

# Nothing heavy is imported at module level (torch, the recipe schema, the modalities): `aip --help`, `aip -h`,
# `aip --version` and shell completion then answer in a fraction of a second; each command imports what it uses.
app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Distil a classifier for a real dataset from a single datum (The Augmented Image Prior).")

RecipeArg = Annotated[Path, typer.Argument(help="Recipe TOML file or the name of a shipped recipe, e.g. "
                                                "recipes/fashion-mnist.toml or fashion-mnist.")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a recipe key: --set train.epochs=3 (repeatable).")
]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]


def _version(value: bool) -> None:
    if value:
        from aip import __version__

        typer.echo(f"aip {__version__}")
        raise typer.Exit()


@app.callback()
def _app(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False) -> None:
    """Distil a classifier for a real dataset from a single datum (The Augmented Image Prior)."""


def _load(recipe: Path, overrides: list[str] | None) -> Recipe:
    """The recipe at a path, or shipped under that name (:mod:`aip.shipped`), with ``--set`` overrides."""
    from aip import recipe as recipe_mod
    from aip.shipped import resolve

    return recipe_mod.load(resolve(recipe), list(overrides or []))


def _table(m: dict) -> str:
    rows = [
        ("teacher top-1", f"{m['teacher']['top1']:.2f} %"),
        ("student top-1", f"{m['student']['top1']:.2f} %"),
        ("student top-5", f"{m['student']['top5']:.2f} %"),
        ("chance", f"{m['chance']:.2f} %"),
        ("student / teacher", f"{100 * m['ratio']:.1f} %"),
        ("wall time", f"{m['wall_seconds'] / 60:.1f} min (this invocation; "
                      f"distillation {m['train_seconds'] / 60:.1f} min in all)"),
        ("run directory", m["run_dir"]),
    ]
    if "time" in m:
        t = m["time"]
        rows.insert(-1, ("where the time went", f"setup and teacher training {t['setup_and_teacher_training'] / 60:.1f}"
                         f" min, teacher evaluation {t['teacher_evaluation'] / 60:.1f} min, distillation steps "
                         f"{t['distillation_steps'] / 60:.1f} min, evaluations {t['evaluations'] / 60:.1f} min"))
    if "student_bn_recalibrated_on_test_inputs" in m:
        tta = m["student_bn_recalibrated_on_test_inputs"]
        rows.insert(3, ("student top-1, BN re-estimated on TEST inputs (test-time adaptation, not the method)",
                        f"{tta['top1']:.2f} %"))
    if not m.get("finished", True):
        rows.append(("stopped early", "run the same command again to continue"))
    if m.get("processes", 1) > 1:
        rows.append(("processes", f"{m['processes']} (effective batch {m['effective_batch']}, lr {m['lr']:.3g})"))
    width = max(len(k) for k, _ in rows)
    line = "-" * (width + 40)
    body = "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
    title = f"{m['recipe']}: {m['dataset']} from {m['source'] or 'one datum'} ({m['steps']} steps)"
    return f"{line}\n{title}\n{line}\n{body}\n{line}"


@app.command()
def run(
    recipe: RecipeArg,
    set_: SetOpt = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/RECIPE-NAME).")] = None,
    device: DeviceOpt = "auto",
    stop_after_epochs: Annotated[int | None, typer.Option(
        min=1, help="Stop after this many epochs of this invocation (e.g. to fit a cluster time limit); "
                    "the same command resumes.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Write the run into a non-empty --out folder that holds no run of this recipe (files of "
                        "the same names as the run's are still never overwritten).")] = False,
) -> None:
    """Distil the recipe's teacher into its student from the single source datum, then evaluate.

    Under `torchrun --nproc-per-node N -m aip run RECIPE` it trains data-parallel on N processes.
    """
    from aip import distributed
    from aip.hardware import resolve_device
    from aip.run import default_run_dir
    from aip.run import run as run_recipe

    overrides = list(set_ or [])
    r = _load(recipe, overrides)
    with distributed.session(resolve_device(device)) as dev:
        metrics = run_recipe(r, out=out or default_run_dir(recipe, overrides), device=dev,
                             stop_after_epochs=stop_after_epochs, force=force)
        if distributed.current().is_main:
            typer.echo(_table(metrics))


@app.command()
def teacher(
    recipe: RecipeArg,
    set_: SetOpt = None,
    device: DeviceOpt = "auto",
    force: Annotated[bool, typer.Option(help="Retrain even if a cached teacher exists.")] = False,
) -> None:
    """Train the recipe's teacher (teacher.kind = "train") on the labelled dataset and cache it."""
    from aip.hardware import resolve_device
    from aip.run import train_teacher

    info = train_teacher(_load(recipe, set_), device=resolve_device(device), force=force)
    typer.echo(f"teacher top-1 {info['top1']:.2f} % (top-5 {info['top5']:.2f} %), "
               f"{info['num_classes']} classes: {info['path']}")


@app.command("eval")
def eval_(
    recipe: RecipeArg,
    checkpoint: Annotated[Path, typer.Option(help="A run's best.pt or last.pt.")],
    set_: SetOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Evaluate a student checkpoint on the recipe's test split; add per-class accuracy, a confusion matrix and
    teacher agreement to the run's metrics.json."""
    from aip.hardware import resolve_device
    from aip.run import evaluate_checkpoint

    acc = evaluate_checkpoint(_load(recipe, set_), checkpoint, device=resolve_device(device))
    typer.echo(f"top-1 {acc['top1']:.2f} %  top-5 {acc['top5']:.2f} %  ({int(acc['n'])} items)")
    if "agreement" in acc:
        typer.echo(f"agreement with the teacher: top-1 {acc['agreement']['top1']:.2f} %, "
                   f"mean KL(teacher || student) {acc['agreement']['kl']:.4f}")
    typer.echo(f"per-class accuracy and {acc['confusion_png']} written beside {checkpoint}")


@app.command()
def bench(
    recipe: RecipeArg,
    set_: SetOpt = None,
    device: DeviceOpt = "auto",
    steps: Annotated[int, typer.Option(min=1, help="Timed steps per stage.")] = 10,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed steps first (compilation, caches).")] = 3,
    num_classes: Annotated[int, typer.Option(min=0, help="Class count of the models (0: the dataset's).")] = 0,
    vs_reference: Annotated[bool, typer.Option(
        "--vs-reference", help="Also time the paper's pipeline (patches on disk, PIL augmentation in workers).")
    ] = False,
    workers: Annotated[int | None, typer.Option(min=0, help="DataLoader workers of the reference (default: cores).")
                       ] = None,
    profile: Annotated[int, typer.Option(min=0, help="Also profile this many full steps (torch.profiler) and "
                                                     "print the ops that take the most time.")] = 0,
    processes: Annotated[int, typer.Option(min=1, help="Also project the schedule's time on this many "
                                                       "data-parallel processes, each as fast as this one.")] = 1,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Also write a bench record (JSON: device, date, command, stages, projections) to this file "
                       "(read by python -m aip.reproduction).")] = None,
) -> None:
    """Time the recipe's distillation step stage by stage: data, teacher, student, whole step; peak memory."""
    from aip.bench import bench as run_bench
    from aip.hardware import resolve_device

    r = _load(recipe, set_)
    result = run_bench(r, device=resolve_device(device), steps=steps, warmup=warmup, num_classes=num_classes,
                       vs_reference=vs_reference, workers=workers, profile=profile, processes=processes)
    typer.echo(result.table())
    if json_out is not None:
        from aip.reproduction import write_bench_record

        write_bench_record(result, json_out, recipe=r, command=" ".join(["aip", *sys.argv[1:]]))


@app.command()
def check(
    recipe: RecipeArg,
    set_: SetOpt = None,
    device: DeviceOpt = "auto",
    preflight: Annotated[bool, typer.Option(
        "--preflight", help="Exit with 1 unless the run can start here offline: the dataset, source and teacher "
                            "present or made here without a network, and the device there.")] = False,
    schema_only: Annotated[bool, typer.Option(
        "--schema-only", help="Only validate the recipe; skip the preflight checks.")] = False,
) -> None:
    """Validate the recipe and print it fully resolved (every default filled in), then say whether its run can
    start here: one line each for the dataset, the source, the teacher and the device (on stderr)."""
    from aip.run import describe_models

    r = _load(recipe, set_)
    models = describe_models(r)
    typer.echo(r.to_toml(), nl=False)
    typer.echo(f"# OK: {r.train.total_steps} steps of {r.train.batch_size} views; models build: "
               + ", ".join(models), err=True)
    if schema_only:
        return
    from aip.preflight import BLOCKING
    from aip.preflight import preflight as run_preflight

    checks = run_preflight(r, device=device)
    for c in checks:
        typer.echo(f"# preflight {c.line()}", err=True)
    if not any(c.state in BLOCKING for c in checks):
        typer.echo("# the run can start here", err=True)
        return
    typer.echo("# the run cannot start here without more: " + ", ".join(
        f"{c.name} ({'needs the network' if c.state == 'download' else c.state})" for c in checks
        if c.state in BLOCKING), err=True)
    if preflight:
        raise typer.Exit(1)


@app.command()
def preview(
    recipe: RecipeArg,
    set_: SetOpt = None,
    out: Annotated[Path, typer.Option(help="Folder for the preview files.")] = Path("preview"),
    count: Annotated[int, typer.Option(min=1, max=1024, help="Number of views.")] = 64,
    device: DeviceOpt = "cpu",
) -> None:
    """Write a grid of what the student sees: raw views of the source and their augmented versions."""
    from aip.hardware import resolve_device
    from aip.run import preview as preview_views

    r = _load(recipe, set_)
    files = preview_views(r, out=out, count=count, device=resolve_device(device))
    for f in files:
        typer.echo(str(f))


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List installed modalities with their models, datasets and sources."""
    from aip.registry import installed_modalities, load_modality

    catalog = {}
    for name in installed_modalities():
        try:
            catalog[name] = load_modality(name).catalog()
        except AipError as e:  # one broken plugin must not hide the others
            typer.echo(f"warning: {e}", err=True)
    if as_json:
        typer.echo(json.dumps(catalog, indent=2))
        return
    for name, parts in catalog.items():
        typer.echo(f"modality {name}")
        for kind, names in parts.items():
            typer.echo(f"  {kind}: {', '.join(names)}")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (runs/NAME) or an export folder.")],
    format_: Annotated[str, typer.Option("--format", help="safetensors, onnx, torchscript or exported-program "
                                                          "(model.safetensors is always written).")] = "safetensors",
    out: Annotated[Path | None, typer.Option(help="Output folder (default RUN_DIR/export).")] = None,
    push_to_hub: Annotated[str | None, typer.Option("--push-to-hub", metavar="USER/REPO",
                                                    help="Then upload the folder to this Hugging Face Hub repo "
                                                         "(needs the network and `hf auth login`).")] = None,
    private: Annotated[bool, typer.Option(help="With --push-to-hub: create the repo private.")] = False,
) -> None:
    """Write the student as a self-contained folder: weights, config.json (classes, input) and a model card."""
    from aip.export import export as export_student

    folder = export_student(run_dir, fmt=format_, out=out)  # the card names `aip export RUN`, never a machine path
    typer.echo(str(folder))
    if push_to_hub:
        from aip.hub import push_to_hub as push

        typer.echo(push(folder, push_to_hub, private=private or None))


@app.command()
def predict(
    path: Annotated[str, typer.Argument(help="A run directory, an export folder or a Hugging Face Hub repo id "
                                             "(user/repo).")],
    inputs: Annotated[list[str], typer.Argument(help="Input files (images, videos or audio, as the model takes), "
                                                     "or folders of them.")],
    top_k: Annotated[int, typer.Option(min=1, help="Classes shown per input.")] = 5,
    batch_size: Annotated[int, typer.Option(min=1, help="Files classified per forward pass.")] = 32,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (a JSON list).")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Machine-readable output: CSV rows input,rank,label,prob.")
                      ] = False,
    device: DeviceOpt = "cpu",
) -> None:
    """Classify raw input files with a distilled student: a table of each file's top classes and probabilities.

    A folder stands for its files, in name order (not its sub-folders, nor hidden files); a file in it that the
    model cannot read is skipped with one counted warning, while a file named on the command line must read."""
    from aip.hardware import resolve_device
    from aip.predict import predict_files, render
    from aip.student import load_student

    if as_json and as_csv:
        raise typer.BadParameter("--json and --csv are exclusive; give one of them")
    student = load_student(path, device=resolve_device(device))
    results, skipped, listed = predict_files(student, inputs, top_k=top_k, batch_size=batch_size)
    if skipped:
        typer.echo(f"warning: skipped {len(skipped)} of {listed} files that the model cannot read (first: "
                   f"{skipped[0]})", err=True)
    typer.echo(render(results, "json" if as_json else "csv" if as_csv else "table"))


@app.command()
def visualize(
    path: Annotated[Path, typer.Argument(help="A run directory or an export folder.")],
    classes: Annotated[str | None, typer.Option(help="Comma-separated class names (default: the first 10).")
                       ] = None,
    teacher: Annotated[bool, typer.Option("--teacher", help="Also the recipe's teacher, side by side.")] = False,
    steps: Annotated[int, typer.Option(min=1, help="Optimisation steps per class.")] = 256,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Random seed (start and transforms).")] = 0,
    out: Annotated[Path | None, typer.Option(help="Output folder (default PATH/visualize).")] = None,
    device: DeviceOpt = "cpu",
) -> None:
    """Feature visualisation: inputs that maximise each class logit (Lucid-style activation maximisation)."""
    from aip.hardware import resolve_device
    from aip.visualize import visualize_student

    names = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    for f in visualize_student(path, names=names, teacher=teacher, out=out, steps=steps, lr=lr, seed=seed,
                               device=resolve_device(device)):
        typer.echo(str(f))


@app.command()
def sweep(
    path: Annotated[Path, typer.Argument(help="A sweep file (recipes/sweeps/*.toml) or a recipe with --axis.")],
    axis: Annotated[list[str] | None, typer.Option(help="KEY=V1,V2,... : one more axis of the sweep (repeatable), "
                                                        "e.g. --axis loss.temperature=1,4,8.")] = None,
    seeds: Annotated[int | None, typer.Option(min=1, help="Run each variant with train.seed = 0..N-1.")] = None,
    set_: SetOpt = None,
    out: Annotated[Path | None, typer.Option(help="The sweep's folder (default runs/sweeps/NAME).")] = None,
    device: DeviceOpt = "auto",
    devices: Annotated[str | None, typer.Option(help="cuda:0,cuda:1,... : one variant per device at a time, in "
                                                     "parallel aip run processes.")] = None,
    submitit: Annotated[bool, typer.Option("--submitit", help="Send the unfinished variants to SLURM as one job "
                                                              "array (needs aip[cluster]).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the variants and their aip run commands.")
                       ] = False,
    only: Annotated[str | None, typer.Option(help="PATTERN,... : run only the variants whose folder name matches "
                                                  "(shell patterns, e.g. --only 'select-*,full_*').")] = None,
    reuse: Annotated[list[Path] | None, typer.Option(help="DIR (repeatable): copy a variant from a finished run "
                                                          "in DIR (a sweep's or a run folder) with the same "
                                                          "resolved recipe, seed included, instead of running "
                                                          "it again.")] = None,
) -> None:
    """Run every variant of a sweep (axes over recipe keys, seeds), each into its own run directory.

    Re-running skips finished variants and resumes an interrupted one; failed variants are listed at the end.
    """
    from aip import sweep as sweep_mod
    from aip.shipped import resolve

    spec = sweep_mod.load(resolve(path, "sweep"), axes=list(axis or []), seeds=seeds, overrides=list(set_ or []))
    command = " ".join(["aip", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith(("aip", "__main__.py")) else ""
    result = sweep_mod.sweep(spec, out=out, device=device, dry_run=dry_run, submitit=submitit, command=command,
                             only=[p.strip() for p in only.split(",") if p.strip()] if only else (),
                             devices=[d.strip() for d in devices.split(",") if d.strip()] if devices else (),
                             echo=typer.echo, reuse=list(reuse or []))
    if dry_run:
        return
    typer.echo(result.summary())
    typer.echo(f"report: aip report {result.out}")
    if result.failed:
        raise typer.Exit(1)


@app.command()
def report(
    dirs: Annotated[list[Path], typer.Argument(help="Sweep folders or run directories (or folders of them).")],
    out: Annotated[Path | None, typer.Option(help="Folder for report.md and its figures (default: the one DIR "
                                                  "given, or report/).")] = None,
) -> None:
    """Write report.md with tables (mean ± std over seeds, best and last) and figures of the runs (300 dpi PNG and
    PDF)."""
    from aip.report import report as write_report

    typer.echo(str(write_report(list(dirs), out=out, command=" ".join(["aip", "report", *sys.argv[2:]])
                                if len(sys.argv) > 1 and sys.argv[1] == "report" else "")))


@app.command("source-stats")
def source_stats(
    recipe: RecipeArg,
    set_: SetOpt = None,
    views: Annotated[int, typer.Option(min=1, help="Augmented views the teacher labels.")] = 1024,
    device: DeviceOpt = "cpu",
) -> None:
    """Print measures of the source datum that may predict how well it distils (JSON): compressed size,
    entropy, patch diversity, and the teacher's prediction entropy and class coverage over VIEWS views."""
    from aip.hardware import resolve_device
    from aip.source_stats import source_stats as measure

    r = _load(recipe, set_)
    typer.echo(json.dumps(measure(r, device=resolve_device(device), views=views), indent=2))


INTERRUPTED = "interrupted: the last checkpoint is kept; run the same command to resume"


def _quiet_queue_feeder(args: threading.ExceptHookArgs) -> None:
    """Drop the traceback of multiprocessing's queue-feeder thread: when a DataLoader worker has raised, the
    thread fails as the loader shuts down ("semaphore or lock released too many times"), after aip has already
    reported the worker's error in one line. Every other thread's error is printed as usual."""
    if args.thread is not None and args.thread.name == "QueueFeederThread":
        return
    threading.__excepthook__(args)


def main() -> None:
    from aip import interrupts
    from aip.allocator import keep_freed_memory
    from aip.interrupts import Interrupted

    keep_freed_memory()  # before the first large allocation (aip.allocator)
    # SIGTERM (a cluster's time limit, `kill`) outside a training loop unwinds like Ctrl-C, removing temporary
    # files, instead of killing the process with no message; the training loops defer both (aip.interrupts)
    handlers = interrupts.install()

    code = 0
    try:
        # not standalone: click's usage errors come here, printed in one line below instead of typer's box
        result = app(standalone_mode=False)
        if result == 130 and not isinstance(result, bool):  # typer turns a KeyboardInterrupt into Exit(130)
            typer.echo(INTERRUPTED, err=True)
            code = interrupts.exit_code()
        elif isinstance(result, int) and not isinstance(result, bool):  # typer.Exit(code) returns its code
            code = result
    except typer.Abort:  # click's form of end of input (EOFError) at a prompt
        typer.echo(INTERRUPTED, err=True)
        code = 130
    except Interrupted as e:  # the checkpoint is consistent with the step it names
        typer.echo(str(e), err=True)
        code = e.exit_code
    except AipError as e:  # 2 for a usage error (UsageError, RecipeError), 1 for a failure at run time
        typer.echo(f"error: {one_line(e)}", err=True)
        code = e.exit_code
        threading.excepthook = _quiet_queue_feeder
    except KeyboardInterrupt:
        typer.echo(INTERRUPTED, err=True)
        code = interrupts.exit_code()
    except OSError as e:  # a path the user gave that the system refuses (too long, no permission, disk full)
        line = path_error_line(e)
        if line is None:
            raise
        typer.echo(f"error: {line}", err=True)
        code = path_error_code(e, sys.argv[1:])
    except Exception as e:
        # click's usage errors (an unknown option, a value out of range, a missing argument), whether typer
        # vendors click (recent typer) or imports it: recognised by their interface, not their module
        if not (hasattr(e, "format_message") and isinstance(getattr(e, "exit_code", None), int)):
            raise
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:  # `aip` alone: the help, a success
            typer.echo(ctx.get_help())
            code = 0
        else:
            see = f"; see {ctx.command_path} --help" if ctx is not None else ""
            typer.echo(f"error: {e.format_message().rstrip('.')}{see}", err=True)
            code = 2
    interrupts.restore(handlers)
    # exit only once the error, and with it the frames of its traceback, are gone: a DataLoader iterator those
    # frames held then stops its worker processes now, instead of printing a thread's traceback at shutdown
    if code:
        sys.exit(code)
