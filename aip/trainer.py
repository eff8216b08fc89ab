"""The distillation loop: sample -> augment -> teacher (no grad) -> student -> KD loss -> step -> log -> checkpoint.

:func:`fit` runs :func:`aip.step.distill_step` until the recipe's schedule is done, evaluating the student
after every ``eval.every_epochs`` epochs. Gradient accumulation (``train.grad_accum``) happens inside the step;
data parallelism (``torchrun``, see :mod:`aip.distributed`) wraps the student. Resume is automatic: if the run
directory holds ``last.pt`` of the same recipe, weights, optimiser, scheduler, RNG and :class:`~aip.state.RunState`
are restored and training continues. SIGINT/SIGTERM stop it at a step boundary (:mod:`aip.interrupts`).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aip import checkpoint, curve, distributed, files, graphs, rundir
from aip.errors import AipError, UsageError
from aip.hardware import Policy
from aip.interrupts import Interrupted, deferred_stops
from aip.modality import Augmenter, SourceSampler
from aip.optim import make_optimizer, make_scheduler
from aip.progress import tqdm
from aip.recipe import Recipe
from aip.state import RunState, json_safe
from aip.step import SelectTimer, distill_step
from aip.tracking import Tracker


@dataclass
class FitResult:
    """What a finished (or resumed-and-finished) run reports."""

    step: int
    final: dict[str, float]
    best: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    eval_seconds: float = 0.0

    @classmethod
    def of(cls, state: RunState) -> FitResult:
        """What the run in ``state`` reports (its step, metrics, history and times)."""
        return cls(step=state.step, final=state.final, best=state.best, history=state.history,
                   seconds=state.seconds, eval_seconds=state.eval_seconds)


def data_path(recipe: Recipe, sampler: SourceSampler, augmenter: Augmenter, *, policy: Policy) -> graphs.GraphedData:
    """One training batch per call: ``view_pool x batch_size`` raw views, augmented (4-D image batches in
    the policy's layout); on CUDA replayed from a CUDA graph when ``train.graph_data`` allows it and the modality
    marked its sampler and augmenter capturable (:mod:`aip.graphs`): a batch is then valid until the next call."""
    n = recipe.train.batch_size * recipe.train.view_pool

    def make() -> torch.Tensor:
        return policy.batch(augmenter(sampler.sample(n)))

    enabled = graphs.wanted(recipe, policy.device) and graphs.capturable(sampler, augmenter)
    return graphs.GraphedData(make, device=policy.device, enabled=enabled)


class NonFiniteGuard:
    """Notices a non-finite loss without a device sync per step: a flag and the first bad step are kept on the
    device, and read back (with a check of the weights) only before anything is logged, evaluated or saved."""

    def __init__(self, device: torch.device) -> None:
        self.count = torch.zeros((), dtype=torch.long, device=device)
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)

    def update(self, loss: torch.Tensor) -> None:
        self.count += 1
        bad = ~torch.isfinite(loss)
        self.first_bad = torch.where(bad & (self.first_bad < 0), self.count, self.first_bad)

    def check(self, params: list[nn.Parameter], *, offset: int, step: int) -> None:
        """Raise :class:`AipError` naming the step if a loss or a weight became non-finite (a collective)."""
        weights_ok = torch.stack([p.detach().isfinite().all() for p in params]).all()
        bad = distributed.all_sum(torch.stack([(self.first_bad >= 0).float(), (~weights_ok).float()]))
        if bad.sum().item() > 0:
            first = int(self.first_bad.item())
            where = f"at step {offset + first}" if first >= 0 else f"by step {step} (in the weights)"
            raise AipError(f"the loss became non-finite {where}; nothing was saved after it: lower train.lr "
                           "(or set train.grad_clip) and run again with --out NEW_DIR or after deleting last.pt")


class RunFiles:
    """The run directory's checkpoints and evaluation log. Rank 0 alone writes; every rank may read."""

    def __init__(self, run_dir: Path, recipe: Recipe, *, classes: list[str]) -> None:
        self.dir, self.recipe, self.classes = run_dir, recipe, classes
        self.last, self.best, self.log = run_dir / "last.pt", run_dir / "best.pt", run_dir / "metrics.jsonl"
        self.fingerprint = rundir.fingerprint(recipe)

    def meta(self) -> dict[str, Any]:
        return {"recipe": self.recipe.to_dict(), "classes": self.classes, "num_classes": len(self.classes)}

    def resume(self, student: nn.Module, opt: torch.optim.Optimizer, sched: Any, *, total: int,
               steps_per_epoch: int) -> RunState:
        """Restore everything from ``last.pt`` if it exists (every rank reads it), else start a fresh run."""
        d, cfg = distributed.current(), self.recipe.train
        if d.active and d.is_main:
            tqdm.write(f"{d.world} processes: effective batch {cfg.effective_batch(d.world)} ({cfg.batch_size} x "
                       f"{cfg.grad_accum} accumulation x {d.world}), lr {cfg.lr_at(d.world):.3g} (lr_scaling = "
                       f"{cfg.lr_scaling!r}), {steps_per_epoch} steps per epoch")
        if d.is_main:  # what a kill during a write left (the folder is locked: no other writer)
            files.remove_stale_temps(self.dir, rundir.RUN_FILES)
        if not distributed.agree(self.last.exists()):
            torch.manual_seed(cfg.seed + d.rank)  # every rank draws different views; rank 0 as a single process
            return RunState()
        saved = checkpoint.load(self.last)
        if saved.get("fingerprint") != self.fingerprint:
            raise UsageError(f"{self.dir} holds a run of a different recipe; pass --out NEW_DIR or delete {self.last}")
        if saved.get("world", 1) != d.world:
            raise UsageError(f"{self.dir} was trained by {saved.get('world', 1)} process(es), not {d.world}; resume "
                             "it with the same number of processes, or pass --out NEW_DIR")
        fix = f"delete {self.last} to start the run over, or pass --out NEW_DIR"
        checkpoint.check_run_checkpoint(saved, path=self.last, model=student, world=d.world, fix=fix)
        try:
            student.load_state_dict(saved["student"])
            opt.load_state_dict(saved["optimizer"])
            sched.load_state_dict(saved["scheduler"])
            checkpoint.set_rng_state(saved["rng_per_rank"][d.rank] if "rng_per_rank" in saved else saved["rng"])
            state = RunState.from_dict(saved.get("state", saved))
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as e:  # a state torch cannot restore
            raise AipError(f"{self.last} cannot be resumed ({type(e).__name__}: {str(e).strip()[:100]}); "
                           f"{fix}".replace("\n", " ")) from None
        problem = None
        if state.best.get("top1", -1.0) >= 0 and d.is_main:
            problem = checkpoint.usable_best(self.best, student)
        problem = distributed.agree(problem)
        if problem is not None:
            if state.step >= total:  # no evaluation is left to rewrite it
                raise AipError(f"{self.best} cannot be used ({problem}) and the run is finished, so no evaluation "
                               f"rewrites it; delete {self.best} (export and predict then use last.pt)")
            if d.is_main:
                tqdm.write(f"warning: {self.best} cannot be used ({problem}); it is written again from the next "
                           "evaluation on", file=sys.stderr)
            state.best = {"top1": -1.0}
        if state.step < total and d.is_main:
            tqdm.write(f"resuming {self.dir} at step {state.step}/{total} (epoch {state.step // steps_per_epoch})")
        return state

    def save_last(self, state: RunState, student: nn.Module, opt: torch.optim.Optimizer, sched: Any) -> None:
        """A collective (every rank's RNG state is gathered); rank 0 writes."""
        d = distributed.current()
        rngs = distributed.gather(checkpoint.rng_state())
        if d.is_main:
            checkpoint.save_atomic({
                "fingerprint": self.fingerprint, **self.meta(), "student": student.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng_per_rank": rngs,
                "world": d.world, "state": state.to_dict(),
            }, self.last)
            tqdm.write(f"checkpoint: step {state.step} saved to {self.last}")

    def save_best(self, state: RunState, student: nn.Module) -> None:
        if distributed.current().is_main:
            checkpoint.save_atomic({**self.meta(), "student": student.state_dict(), "epoch": state.best["epoch"],
                                    "metrics": state.best}, self.best)

    def write_log(self, state: RunState) -> None:
        """``metrics.jsonl`` rewritten from the state: one valid JSON line per evaluation, never duplicated."""
        if distributed.current().is_main:
            files.write_text("".join(json.dumps(json_safe(r)) + "\n" for r in state.history), self.log)


def fit(*, recipe: Recipe, student: nn.Module, teacher: nn.Module, sampler: SourceSampler, augmenter: Augmenter,
        evaluate: Callable[[nn.Module], dict[str, float]], run_dir: Path, device: torch.device,
        classes: list[str] | None = None, stop_after_epochs: int | None = None,
        tracker: Tracker | None = None) -> FitResult:
    """Distil ``teacher`` into ``student`` from views of the single source datum.

    Under ``torchrun`` every rank calls this together (see :mod:`aip.distributed`): each draws its own views,
    gradients are averaged by DistributedDataParallel, and rank 0 alone writes the run directory.

    Args:
        evaluate: returns ``{"top1", "top5", ...}`` of the model it is given on the real test split (called on
            every rank at the same steps).
        run_dir: the run folder (:class:`aip.rundir.RunDir`); an existing ``last.pt`` there is resumed.
        classes: the dataset's class names, saved with the weights.
        stop_after_epochs: stop (as if interrupted) after this many epochs of this call.
        tracker: the run's trackers, opened here at the resumed step and left open (default: fit's own, closed).

    Raises:
        Interrupted: on SIGINT/SIGTERM, after saving a checkpoint at the step boundary.
    """
    cfg, d = recipe.train, distributed.current()
    spe = cfg.steps_per_epoch_at(d.world)
    total = cfg.epochs * spe
    policy, student, teacher = _placed(recipe, device, student, teacher)
    params = list(student.parameters())
    opt, sched = _optimiser(recipe, params, steps_per_epoch=spe)
    run = RunFiles(run_dir, recipe, classes=classes or [])
    state = run.resume(student, opt, sched, total=total, steps_per_epoch=spe)
    train_model, label_model = _wrap(student, teacher, compile=cfg.compile, device=device)
    data = TimedData(data_path(recipe, sampler, augmenter, policy=policy))
    selecting = SelectTimer()  # the view selection's host time (aip.select), as select_share in steps.jsonl
    guard, meter, clock = NonFiniteGuard(device), Meter(device), Clock()
    own_tracker = tracker is None
    tracker = (tracker or Tracker.of(recipe, run_dir, enabled=d.is_main)).open(start_step=state.step)
    start_step, epochs_done = state.step, 0
    grid = curve.log_steps(total, recipe.eval.log_grid)  # extra evaluations for the views-to-accuracy curve
    teacher.eval()
    student.train()
    bar = _bar(recipe, total=total, step=state.step)
    try:
        with deferred_stops() as stop:
            while state.step < total:
                losses = distill_step(recipe=recipe, data=data, teacher=label_model, student=train_model,
                                      optimizer=opt, policy=policy, params=params, timer=selecting)
                sched.step()
                state.step += 1
                guard.update(losses["loss"])
                meter.add(losses)
                bar.update(1)
                stopping = distributed.agree_any(bool(stop))  # every process stops at the same step
                end_of_epoch = state.step % spe == 0
                if state.step % cfg.log_every == 0 or state.step == total:  # log
                    _log(state.step, start_step=start_step, total=total, cfg=cfg, params=params, guard=guard,
                         meter=meter, lr=sched.get_last_lr()[0], data=data, select=selecting, bar=bar, tracker=tracker)
                epoch_eval = end_of_epoch and (state.step // spe % recipe.eval.every_epochs == 0 or state.step == total)
                if state.step in grid and not epoch_eval:  # eval.log_grid: where no epoch's evaluation falls
                    state.seconds += clock.lap()
                    _grid_eval(state, run, student, evaluate, tracker, meter, lr=sched.get_last_lr()[0], spe=spe)
                    state.eval_seconds += clock.lap()
                if end_of_epoch or stopping:  # checkpoint (after an evaluation at the end of an epoch)
                    guard.check(params, offset=start_step, step=state.step)
                    state.seconds += clock.lap()
                    meter.into_epoch(state)
                    if end_of_epoch:
                        _end_epoch(state, run, recipe, student, evaluate, tracker, lr=sched.get_last_lr()[0],
                                   epoch=state.step // spe, total=total)
                        state.eval_seconds += clock.lap()
                        epochs_done += 1
                    run.save_last(state, student, opt, sched)
                    clock.lap()  # saving is neither training nor evaluation
                if stopping:
                    raise Interrupted(state.step, stop.signum or signal.SIGTERM)
                if end_of_epoch and stop_after_epochs is not None and epochs_done >= stop_after_epochs:
                    break
                _note_eager(data)
    finally:
        bar.close()
        if own_tracker:
            tracker.close()
    return FitResult.of(state)


def _placed(recipe: Recipe, device: torch.device, student: nn.Module, teacher: nn.Module
            ) -> tuple[Policy, nn.Module, nn.Module]:
    """The recipe's device policy on ``device``, tuned for it, and the two models placed by it."""
    policy = Policy.of(recipe, device)
    policy.tune()
    return policy, policy.place(student), policy.place(teacher)


def _bar(recipe: Recipe, *, total: int, step: int) -> Any:
    """The progress bar of the run's steps (rank 0 only), starting at ``step`` of a resumed run."""
    return tqdm(total=total, initial=step, desc=recipe.name, dynamic_ncols=True, unit="step",
                disable=not distributed.current().is_main)


def _log(step: int, *, start_step: int, total: int, cfg: Any, params: list[nn.Parameter], guard: NonFiniteGuard,
         meter: Meter, lr: float, data: TimedData, select: SelectTimer, bar: Any, tracker: Tracker) -> None:
    """Every ``train.log_every`` steps: check the weights are finite, then log the means since the last log to
    the bar, ``steps.jsonl`` and the trackers; after the first interval, print the estimate of the time left."""
    d = distributed.current()
    guard.check(params, offset=start_step, step=step)
    scalars = meter.read(lr=lr, batch=cfg.batch_size * d.world, data=data, select=select)
    bar.set_postfix(loss=f"{scalars['loss']:.4f}", lr=f"{scalars['lr']:.2e}",
                    samples_s=f"{scalars['samples_per_s']:.0f}")
    tracker.log_step(step, scalars)
    if step - start_step == cfg.log_every and d.is_main:
        _print_estimate(step, start_step, total, bar)


def _note_eager(data: TimedData) -> None:
    """Say once (rank 0) that the data path could not be captured in a CUDA graph and runs eagerly."""
    if data.error and distributed.current().is_main:
        tqdm.write(f"note: the data path could not be captured in a CUDA graph and runs eagerly "
                   f"({data.error}); set train.graph_data = 'off' to skip the attempt")
    data.error = ""


def _optimiser(recipe: Recipe, params: list[nn.Parameter], *, steps_per_epoch: int) -> tuple[Any, Any]:
    """The recipe's optimiser and its per-step learning-rate schedule."""
    cfg, world = recipe.train, distributed.current().world
    opt = make_optimizer(params, name=cfg.optimizer, lr=cfg.lr_at(world), weight_decay=cfg.weight_decay,
                         momentum=cfg.momentum)
    sched = make_scheduler(opt, total=cfg.epochs * steps_per_epoch, schedule=cfg.schedule,
                           warmup=round(cfg.warmup_epochs * steps_per_epoch),
                           milestones=tuple(round(m * steps_per_epoch) for m in cfg.milestones), gamma=cfg.gamma)
    return opt, sched


def _wrap(student: nn.Module, teacher: nn.Module, *, compile: bool, device: torch.device
          ) -> tuple[nn.Module, nn.Module]:
    """The modules the step calls: the student wrapped for data parallelism under torchrun (the frozen teacher
    has no gradients to average), both compiled with ``train.compile``."""
    train_model, label_model = student, teacher
    if distributed.current().active:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(student, device_ids=[device] if device.type == "cuda" else None)
    if compile:
        train_model, label_model = torch.compile(train_model), torch.compile(teacher)
    return train_model, label_model


def _end_epoch(state: RunState, run: RunFiles, recipe: Recipe, student: nn.Module,
               evaluate: Callable[[nn.Module], dict[str, float]], tracker: Tracker, *, lr: float, epoch: int,
               total: int) -> None:
    """Evaluate (every ``eval.every_epochs`` epochs, and at the end), keep the best weights, log the row."""
    if epoch % recipe.eval.every_epochs == 0 or state.step == total:
        acc = evaluate(student)
        student.train()
        row = {"epoch": epoch, "step": state.step, "train_loss_epoch": state.epoch_loss / max(state.epoch_steps, 1),
               "lr": lr, **acc, "seconds": round(state.seconds, 1)}
        if state.record(row):
            state.best["epoch"] = epoch
            run.save_best(state, student)
        run.write_log(state)
        tracker.log_eval(state.step, acc, train_loss_epoch=row["train_loss_epoch"])
        if distributed.current().is_main:
            tqdm.write(f"epoch {epoch}: training loss {row['train_loss_epoch']:.4f}  top1 {acc['top1']:.2f}%  "
                       f"top5 {acc['top5']:.2f}%")
    state.epoch_loss, state.epoch_steps = 0.0, 0


def _grid_eval(state: RunState, run: RunFiles, student: nn.Module, evaluate: Callable[[nn.Module], dict[str, float]],
               tracker: Tracker, meter: Meter, *, lr: float, spe: int) -> None:
    """An evaluation of ``eval.log_grid`` inside an epoch: a metrics.jsonl row at a fractional epoch, whose
    ``train_loss_epoch`` is the epoch's mean so far; it may become the best (best.pt). Every rank calls it at the
    same step."""
    acc = evaluate(student)
    student.train()
    steps = state.epoch_steps + meter.epoch_steps
    loss = (state.epoch_loss + distributed.all_mean(meter.epoch_sum).item()) / max(steps, 1)
    row = {"epoch": round(state.step / spe, 4), "step": state.step, "train_loss_epoch": loss, "lr": lr, **acc,
           "seconds": round(state.seconds, 1)}
    if state.record(row):
        state.best["epoch"] = row["epoch"]
        run.save_best(state, student)
    run.write_log(state)
    tracker.log_eval(state.step, acc, train_loss_epoch=loss)


class Clock:
    """Wall time in laps: :meth:`lap` returns the seconds since the previous lap."""

    def __init__(self) -> None:
        self.last = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        return seconds


class TimedData:
    """A batch maker that adds up the host time spent in it (on CUDA: the time to queue the work)."""

    def __init__(self, make: graphs.GraphedData) -> None:
        self.make, self.seconds = make, 0.0

    @property
    def error(self) -> str:
        return self.make.error

    @error.setter
    def error(self, value: str) -> None:
        self.make.error = value

    def __call__(self) -> torch.Tensor:
        start = time.perf_counter()
        x = self.make()
        self.seconds += time.perf_counter() - start
        return x


class Meter:
    """Losses summed on the device since the last read (no host sync per step), plus wall time."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums: dict[str, torch.Tensor] = {}
        self.steps, self.tick = 0, time.perf_counter()
        self.epoch_sum, self.epoch_steps = torch.zeros((), device=device), 0

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.epoch_sum += losses["loss"]
        self.steps += 1
        self.epoch_steps += 1

    def read(self, *, lr: float, batch: int, data: TimedData, select: SelectTimer | None = None) -> dict[str, float]:
        """Means over every process since the last read, the learning rate, samples/s and the host share of
        the time spent making data (and, with ``select``, choosing views: ``select_share``)."""
        now = time.perf_counter()
        seconds = now - self.tick
        out = {k: distributed.all_mean(v).item() / max(self.steps, 1) for k, v in self.sums.items()}
        out.update(lr=lr, samples_per_s=self.steps * batch / max(seconds, 1e-9),
                   data_share=data.seconds / max(seconds, 1e-9))
        if select is not None:
            out["select_share"] = select.seconds / max(seconds, 1e-9)
            select.seconds = 0.0
        self.sums, self.steps, self.tick, data.seconds = {}, 0, now, 0.0
        return out

    def into_epoch(self, state: RunState) -> None:
        """Move the epoch's loss sum into the run state (which a checkpoint saves)."""
        state.epoch_loss += distributed.all_mean(self.epoch_sum).item()
        state.epoch_steps += self.epoch_steps
        self.epoch_sum, self.epoch_steps = torch.zeros((), device=self.device), 0


def _print_estimate(step: int, start_step: int, total: int, bar: tqdm) -> None:
    rate = bar.format_dict.get("elapsed", 0.0) / max(step - start_step, 1)
    left = (total - step) * rate
    tqdm.write(f"estimate: {left / 60:.1f} min for the remaining {total - step} steps at {rate:.2f} s/step "
               "(evaluations not included)")
