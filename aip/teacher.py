"""The frozen teacher: built from library weights, torch.hub, a local checkpoint, or trained once and cached.

``teacher.kind = "train"`` trains the recipe's ``teacher.arch`` on the labelled training split with
cross-entropy (``aip teacher RECIPE``) and caches it under ``$AIP_CACHE/teachers``, keyed by the teacher
section, the dataset and the input shape, so every recipe that needs the same teacher reuses it.

The training stops cleanly like the distillation (:mod:`aip.interrupts`): on Ctrl-C or SIGTERM it finishes the
step, saves ``KEY.partial.pt`` beside the cache (weights, optimiser, schedule, step, RNG states) and the same
command resumes it from that step; with ``eval.workers = 0`` the resumed teacher is bit-identical to one trained
without a stop (with workers, each worker's augmentation RNG restarts, so only the data order is the same).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler

from aip import checkpoint
from aip.cache import cache_dir
from aip.errors import AipError, one_line
from aip.evaluate import Evaluator
from aip.hardware import Policy
from aip.hub import load_hub
from aip.interrupts import Interrupted, deferred_stops
from aip.modality import LabelledData, Modality
from aip.optim import make_optimizer, make_scheduler
from aip.progress import tqdm
from aip.recipe import Recipe, StudentConfig, TeacherConfig
from aip.step import supervised_losses, train_step


class FrozenTeacher(nn.Module):
    """Wraps a model so it stays in eval mode with no gradients, whatever ``.train()`` calls reach it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenTeacher:  # noqa: ARG002 - frozen on purpose
        super().train(False)
        return self

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def cache_key(recipe: Recipe, data: LabelledData) -> str:
    """Identity of a trained teacher: modality, teacher section, dataset (name, root, size, and the paths of its
    files when the dataset lists them, so a rebuilt or replaced set of the same size gets a new teacher) and
    input shape."""
    shape = list(data.dataset[0][0].shape)
    files = getattr(data.dataset, "files", None)
    listed = hashlib.sha256("\n".join(map(str, files)).encode()).hexdigest()[:16] if files else ""
    teacher = recipe.to_dict()["teacher"]
    fit = {k: v for k, v in (teacher.get("fit") or {}).items() if k != "min_steps"}
    if recipe.teacher.fit.min_steps:  # named by the epochs it makes: where it does not bind (a full dataset), the
        fit["epochs"] = floored_epochs(recipe)  # key, and the cached teacher, are those of the recipe without it
    teacher = {**teacher, "fit": fit}
    blob = json.dumps({"modality": recipe.modality, "teacher": teacher,
                       "dataset": recipe.eval.dataset, "root": recipe.eval.root, "shape": shape,
                       "size": len(data.dataset), **({"files": listed} if listed else {})}, sort_keys=True)
    return f"{recipe.eval.dataset}-{recipe.teacher.arch.replace(':', '_').replace('/', '_')}-" + \
        hashlib.sha256(blob.encode()).hexdigest()[:10]


def build_model(modality: Modality, recipe: Recipe, spec: TeacherConfig | StudentConfig, *, num_classes: int,
                pretrained: bool) -> nn.Module:
    """Ask the modality for ``spec.arch`` (``spec`` is the recipe's teacher or student section)."""
    return modality.model(spec, recipe=recipe, num_classes=num_classes, pretrained=pretrained)


def floored_epochs(recipe: Recipe) -> int | str:
    """The epochs the teacher trains on this recipe's training split (read for its length only) once
    ``teacher.fit.min_steps`` has raised them; the floor itself when that split cannot be read here."""
    from aip.registry import load_modality  # lazily: the registry imports the modalities

    cfg = recipe.teacher.fit
    try:
        items = len(load_modality(recipe.modality).data(recipe, split="train", train=False).dataset)
    except AipError:
        return f"{cfg.epochs}, at least {cfg.min_steps} steps"
    return fit_epochs(cfg.epochs, cfg.min_steps, items // cfg.batch_size)


def fit_epochs(epochs: int, min_steps: int, batches_per_epoch: int) -> int:
    """Epochs the teacher trains for: ``teacher.fit.epochs``, raised so that at least ``min_steps`` optimiser
    steps are taken (a small dataset has few batches an epoch: 3 epochs of 1,400 images at batch 128 are 30)."""
    if batches_per_epoch <= 0:
        return epochs
    return max(epochs, -(-min_steps // batches_per_epoch))


def weak_teacher(top1: float, num_classes: int) -> str | None:
    """One line naming a teacher too weak to distil from, with the fix; ``None`` for a usable one.

    Weak: less than a quarter of the way from chance (100 / classes %) to 100 % (32.5 % for 10 classes, 62.5 %
    for 2). It is a warning, not a refusal: a user may mean to distil a weak teacher (a study of the cap), and
    a student of a weak teacher is still a valid run; the line says what to change otherwise."""
    if num_classes < 2:
        return None
    chance = 100.0 / num_classes
    bar = chance + 0.25 * (100.0 - chance)
    if top1 >= bar:
        return None
    return (f"warning: the teacher reaches only {top1:.1f}% on the test split (chance {chance:.1f}%, usable from "
            f"{bar:.1f}%); a student cannot beat it: train it longer (raise teacher.fit.epochs or "
            f"teacher.fit.min_steps, e.g. --set teacher.fit.min_steps=2000) and check the dataset's labels")


class _Batches(Sampler[list[int]]):
    """The teacher's shuffled batches: what ``DataLoader(shuffle=True, drop_last=True)`` builds (a BatchSampler
    over a RandomSampler, drawing the same random numbers), able to resume inside an epoch. After
    :meth:`resume_at`, the next epoch draws its order as before, skips ``skip`` batches without loading them, then
    sets the RNG state saved at the stop, which the data's augmentations draw from next."""

    def __init__(self, dataset: Any, batch_size: int) -> None:
        self.inner = BatchSampler(RandomSampler(dataset), batch_size, drop_last=True)
        self.resume: tuple[int, dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.inner)

    def resume_at(self, skip: int, rng: dict[str, Any]) -> None:
        self.resume = (skip, rng)

    def __iter__(self) -> Any:
        batches = iter(self.inner)
        resume, self.resume = self.resume, None
        if resume is not None:
            for _ in range(resume[0]):  # indices only: nothing is loaded
                next(batches)
            checkpoint.set_rng_state(resume[1])
        yield from batches


def partial_path(path: Path) -> Path:
    """The checkpoint of an interrupted teacher training, beside the cached teacher ``path`` it becomes."""
    return path.with_name(path.name.removesuffix(".safetensors") + ".partial.pt")


def _resumable(partial: Path, model: nn.Module, *, total: int) -> dict[str, Any] | None:
    """The interrupted training saved at ``partial`` if it fits ``model`` and this schedule; else ``None``, with a
    line saying why it trains from the start (the file is aip's own, so nothing of the user's is lost)."""
    if not partial.is_file():
        return None
    try:
        saved = checkpoint.load(partial)
        want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        state = saved["model"]
        fits = isinstance(state, dict) and {k: tuple(getattr(v, "shape", ())) for k, v in state.items()} == want
        step = saved["step"]
        if not fits or saved.get("total") != total or not isinstance(step, int) or not 0 <= step <= total:
            raise AipError("it is from another teacher or schedule")
        if "torch" not in saved["rng"] or "torch" not in saved["epoch_rng"]:
            raise AipError("it lacks its random-number state")
    except (AipError, KeyError, TypeError, AttributeError) as e:
        tqdm.write(f"note: the interrupted teacher training in {partial} cannot be resumed ({one_line(e)}); "
                   "training the teacher from the start")
        return None
    return saved


def _save_partial(path: Path, *, model: nn.Module, opt: Any, sched: Any, step: int, total: int,
                  epoch_rng: dict[str, Any]) -> None:
    checkpoint.save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(),
                            "scheduler": sched.state_dict(), "step": step, "total": total,
                            "rng": checkpoint.rng_state(), "epoch_rng": epoch_rng}, path)


def fit_teacher(recipe: Recipe, modality: Modality, *, device: torch.device, path: Path,
                evaluator: Evaluator | None = None) -> nn.Module:
    """Train ``recipe.teacher.arch`` with cross-entropy on the labelled training split and save it to ``path``
    (with its accuracy on every item of the test split, measured by ``evaluator`` when given).

    Raises:
        Interrupted: on SIGINT/SIGTERM, after the step and after saving :func:`partial_path`, which the next call
            resumes.
    """
    cfg = recipe.teacher.fit
    torch.manual_seed(recipe.train.seed)  # the same recipe always trains the same teacher
    train = modality.data(recipe, split="train", train=True)
    policy = Policy.of(recipe, device)
    model = policy.place(build_model(modality, recipe, recipe.teacher, num_classes=train.num_classes,
                                     pretrained=False))
    sampler = _Batches(train.dataset, cfg.batch_size)
    batches = DataLoader(train.dataset, batch_sampler=sampler, num_workers=recipe.eval.workers)
    epochs = fit_epochs(cfg.epochs, cfg.min_steps, len(batches))
    total = epochs * len(batches)
    if total == 0:
        raise AipError(f"the training split of {recipe.eval.dataset} has fewer items than teacher.fit.batch_size")
    opt = make_optimizer(list(model.parameters()), name=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = make_scheduler(opt, total=total, schedule=cfg.schedule)
    loss_fn = supervised_losses(cfg.label_smoothing)
    partial = partial_path(path)
    step, epoch_rng = 0, checkpoint.rng_state()
    saved = _resumable(partial, model, total=total)
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        step = saved["step"]
        if step % len(batches):  # inside an epoch: its order again, then the state at the stop
            epoch_rng = saved["epoch_rng"]
            sampler.resume_at(step % len(batches), saved["rng"])
        else:
            epoch_rng = saved["rng"]
        checkpoint.set_rng_state(epoch_rng)
        tqdm.write(f"teacher: resuming the interrupted training at step {step}/{total} ({partial})")
    model.train()
    start = time.perf_counter()
    bar = tqdm(total=total, initial=step, desc=f"teacher {recipe.teacher.arch}", dynamic_ncols=True, unit="step")
    if epochs > cfg.epochs:
        tqdm.write(f"teacher: {epochs} epochs instead of teacher.fit.epochs = {cfg.epochs}, for at least "
                   f"teacher.fit.min_steps = {cfg.min_steps} steps on {len(train.dataset)} training items")
    with deferred_stops() as stop:
        for _epoch in range(step // len(batches), epochs):
            for x, y in batches:
                losses = train_step(model=model, optimizer=opt, micro_batches=[(policy.batch(x), y.to(device))],
                                    count=1, loss_fn=loss_fn, policy=policy)
                sched.step()
                step += 1
                bar.update(1)
                if step % 10 == 0 or step == total:  # reading the loss waits for the device
                    bar.set_postfix(loss=f"{losses['loss'].item():.3f}")
                if stop:
                    bar.close()
                    _save_partial(partial, model=model, opt=opt, sched=sched, step=step, total=total,
                                  epoch_rng=epoch_rng)
                    raise Interrupted(step, stop.signum, during="during teacher training")
            epoch_rng = checkpoint.rng_state()
    bar.close()
    train_seconds = time.perf_counter() - start
    try:
        if evaluator is None:
            evaluator = Evaluator(recipe, modality.data(recipe, split="test", train=False), device=device)
        acc = evaluator.evaluate(model, full=True, desc="teacher eval")
    except KeyboardInterrupt:  # stopped while measuring: keep the trained weights for the same command
        if saved is None or saved["step"] != total:
            _save_partial(partial, model=model, opt=opt, sched=sched, step=total, total=total, epoch_rng=epoch_rng)
        raise
    checkpoint.save_weights(model.state_dict(), {"num_classes": train.num_classes, "classes": list(train.classes),
                                                 "teacher": recipe.to_dict()["teacher"], "dataset": recipe.eval.dataset,
                                                 "test": acc, "train_seconds": train_seconds, "epochs": epochs},
                            path)
    partial.unlink(missing_ok=True)  # the cached teacher replaces it
    tqdm.write(f"teacher {recipe.teacher.arch}: top1 {acc['top1']:.2f}% on {recipe.eval.dataset} test; saved {path}")
    if (line := weak_teacher(acc["top1"], train.num_classes)) is not None:
        tqdm.write(line)
    return model


def teacher_path(recipe: Recipe, data: LabelledData) -> Path:
    """The cached teacher: a safetensors file (weights, with its class count and accuracy in the header).

    A ``.pt`` file of the same name beside it, written by older versions, is still read (safely)."""
    return cache_dir("teachers") / f"{cache_key(recipe, data)}.safetensors"


def _cached_teacher(path: Path) -> tuple[dict[str, Any], int] | None:
    """``(state dict, class count)`` of the cached teacher at ``path`` (or its older ``.pt`` form), if any."""
    if path.is_file():
        state, meta = checkpoint.load_weights(path)
        return state, int(meta.get("num_classes") or checkpoint.classes_in(state) or 0)
    legacy = path.with_suffix(".pt")
    if legacy.is_file():
        saved = checkpoint.load(legacy)
        return saved["state_dict"], int(saved["num_classes"])
    return None


def _warn_if_weak(path: Path, num_classes: int) -> None:
    """The weak-teacher line for a cached teacher too, read from its header (every run reuses it)."""
    if path.suffix != ".safetensors" or not path.is_file():
        return
    try:
        top1 = float(checkpoint.load_weights(path)[1].get("test", {}).get("top1"))
    except (AipError, TypeError, ValueError, AttributeError):
        return  # no accuracy saved with it: nothing to judge
    if (line := weak_teacher(top1, num_classes)) is not None:
        tqdm.write(line)


def load_teacher(recipe: Recipe, modality: Modality, *, device: torch.device, data: LabelledData,
                 train_if_missing: bool = True, evaluator: Evaluator | None = None) -> FrozenTeacher:
    """The recipe's teacher, frozen, on ``device``; its output size is checked against ``data.num_classes``.

    A ``teacher.kind = "train"`` teacher not yet cached is trained here (unless ``train_if_missing`` is false),
    and measured by ``evaluator`` (:class:`aip.evaluate.Evaluator` of ``data``) when given."""
    t = recipe.teacher
    k = data.num_classes
    if t.kind == "pretrained":
        model = build_model(modality, recipe, t, num_classes=k, pretrained=True)
    elif t.kind == "hub":
        model = load_hub(t.hub_repo, t.hub_entry, **t.kwargs)
    elif t.kind == "checkpoint":
        state = checkpoint.state_dict_in(checkpoint.load(Path(t.checkpoint).expanduser()))
        # build with the checkpoint's own class count, so a mismatch is reported as such (check_outputs)
        model = build_model(modality, recipe, t, num_classes=checkpoint.classes_in(state) or k, pretrained=False)
        checkpoint.load_state(model, state, what=f"teacher checkpoint {t.checkpoint}",
                              fix=f"set teacher.arch (now {t.arch!r}) and teacher.kwargs to the model it was saved "
                                  "from")
    else:  # train: cached after the first time
        path = teacher_path(recipe, data)
        cached = _cached_teacher(path)
        if cached is not None:
            state, classes = cached
            model = build_model(modality, recipe, t, num_classes=classes, pretrained=False)
            checkpoint.load_state(model, state, what=f"cached teacher {path}",
                                  fix="delete it and run `aip teacher RECIPE` to train it again")
            _warn_if_weak(path, classes)
        elif train_if_missing:
            model = fit_teacher(recipe, modality, device=device, path=path, evaluator=evaluator)
        else:
            raise AipError(f"no trained teacher for this recipe in {path.parent}; run `aip teacher RECIPE` first")
    return FrozenTeacher(model).to(device)


def check_outputs(teacher: nn.Module, student: nn.Module, views: torch.Tensor, *, num_classes: int) -> None:
    """Fail early, with one line, if teacher and student disagree with each other or with the dataset."""
    with torch.no_grad():
        try:
            t_out = teacher(views)
        except RuntimeError as e:
            raise AipError(f"the teacher cannot take views of shape {tuple(views.shape[1:])} "
                           f"({str(e).splitlines()[0]})") from None
        try:
            was = student.training
            s_out = student.eval()(views)
            student.train(was)
        except RuntimeError as e:
            raise AipError(f"the student cannot take views of shape {tuple(views.shape[1:])} "
                           f"({str(e).splitlines()[0]})") from None
    if t_out.shape[-1] != num_classes:
        raise AipError(f"the teacher predicts {t_out.shape[-1]} classes but the dataset has {num_classes}; "
                       "use a teacher trained on this dataset (or teacher.kind = 'train')")
    if s_out.shape[-1] != t_out.shape[-1]:
        raise AipError(f"the student predicts {s_out.shape[-1]} classes but the teacher {t_out.shape[-1]}; "
                       "check student.kwargs")
