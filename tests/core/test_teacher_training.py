"""The teacher's schedule floor (teacher.fit.min_steps) and the weak-teacher line."""

from pathlib import Path

import pytest
import torch

from aip import recipe as R
from aip.recipe import TeacherFit
from aip.registry import load_modality
from aip.teacher import cache_key, fit_epochs, load_teacher, teacher_path, weak_teacher
from tests.conftest import ROOT

CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("one_thread")  # tests.conftest


def test_min_steps_raises_epochs_on_a_small_dataset_only():
    assert fit_epochs(3, 1000, 10) == 100  # 1,400 images at batch 128: 10 batches an epoch
    assert fit_epochs(3, 1000, 468) == 3  # Fashion-MNIST's 60,000 images: the floor does not bind
    assert fit_epochs(3, 0, 10) == 3
    assert TeacherFit().min_steps == 0


def test_weak_teacher_is_named_with_its_fix():
    line = weak_teacher(28.6, 10)  # the small-dataset case: 3 epochs, 33 steps
    assert line is not None and "teacher.fit.min_steps" in line and "28.6%" in line
    assert weak_teacher(86.2, 10) is None
    assert weak_teacher(60.0, 2) is not None and weak_teacher(80.0, 2) is None


# -------------------------------------------------------------------------- the shipped recipes' floors
#: the training split's size of each dataset a shipped recipe sets teacher.fit.min_steps for
FULL_TRAIN = {"fashion-mnist": 60_000}
#: the small user's set of issue 33: 140 images in each of 10 class folders
SMALL_TRAIN = 1_400


def floored_recipes() -> list[Path]:
    return [p for p in sorted((ROOT / "recipes").glob("*.toml")) if R.load(p).teacher.fit.min_steps]


def test_the_offline_default_sets_a_floor():
    """Its 3 epochs are 30 steps on a 1,400-image folder (the 28.6 % teacher of issue 33)."""
    assert "fashion-mnist" in {p.stem for p in floored_recipes()}


@pytest.mark.parametrize("path", floored_recipes(), ids=lambda p: p.stem)
def test_a_recipes_floor_raises_a_small_sets_epochs_and_leaves_its_full_set_alone(path):
    fit = R.load(path).teacher.fit
    dataset = R.load(path).eval.dataset
    assert dataset in FULL_TRAIN, f"{path.name}: add its training split's size to FULL_TRAIN"
    assert fit_epochs(fit.epochs, fit.min_steps, FULL_TRAIN[dataset] // fit.batch_size) == fit.epochs
    small = SMALL_TRAIN // fit.batch_size
    raised = fit_epochs(fit.epochs, fit.min_steps, small)
    assert raised > fit.epochs and raised * small >= fit.min_steps > (raised - 1) * small


# ---------------------------------------------------------------------- the floor in the teacher's cache key
def test_the_cache_key_names_the_epochs_the_floor_makes(tiny_recipe):
    """The stripes set has 240 training images, 7 batches of 32 an epoch, so the tiny recipe's 4 epochs are 28
    steps. A floor below that trains the same teacher as no floor, so it is the same cached teacher (a
    recipe that gains a floor keeps its users' cached teachers); a floor above it is the teacher of its epochs."""
    modality = load_modality("image")

    def key(*overrides: str) -> str:
        recipe = R.load(tiny_recipe, list(overrides))
        return cache_key(recipe, modality.data(recipe, split="test", train=False))

    assert key("teacher.fit.min_steps=28") == key() == key("teacher.fit.min_steps=1")
    assert key("teacher.fit.min_steps=29") == key("teacher.fit.epochs=5") != key()
    assert key("teacher.fit.min_steps=100") == key("teacher.fit.epochs=15")  # ceil(100 / 7)


# ----------------------------------------------------------------------------------- the weak-teacher line
def test_a_teacher_near_chance_is_named_with_the_fix_when_trained_and_when_cached(tiny_recipe, capsys):
    """A learning rate that leaves the teacher as it was initialised: near chance (25 % for 4 classes)."""
    recipe = R.load(tiny_recipe, ["teacher.fit.lr=1e-9", "teacher.fit.epochs=1"])
    modality = load_modality("image")
    test = modality.data(recipe, split="test", train=False)
    load_teacher(recipe, modality, device=CPU, data=test)
    trained = capsys.readouterr().out
    assert teacher_path(recipe, test).is_file()
    load_teacher(recipe, modality, device=CPU, data=test, train_if_missing=False)  # the cached one
    cached = capsys.readouterr().out
    for out in (trained, cached):
        line = next(x for x in out.splitlines() if x.startswith("warning: the teacher"))
        assert "chance 25.0%" in line and "teacher.fit.min_steps" in line and "teacher.fit.epochs" in line, line


# ------------------------------------------------------------- the student's weights do not see the teacher
def test_the_students_initial_weights_are_the_same_with_a_trained_or_a_cached_teacher(tiny_recipe):
    """Training a teacher draws from the global RNG and loading a cached one draws its initial weights; the
    student, built after the teacher, starts from the same weights either way (a first run of a recipe and
    every later one give the same student), and from the weights the seed alone gives."""
    from aip.parts import Parts

    recipe = R.load(tiny_recipe)

    def student_after_teacher() -> list[torch.Tensor]:
        torch.manual_seed(recipe.train.seed)
        parts = Parts(recipe, device=CPU)
        assert parts.teacher is not None
        return [p.detach().clone() for p in parts.student.parameters()]

    cached_file = teacher_path(recipe, Parts(recipe, device=CPU).test)
    assert not cached_file.exists()
    trained = student_after_teacher()  # the teacher trains here
    assert cached_file.exists()
    cached = student_after_teacher()  # and loads from the cache here
    torch.manual_seed(recipe.train.seed)
    alone = [p.detach() for p in Parts(recipe, device=CPU).student.parameters()]
    for a, b, c in zip(trained, cached, alone, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
