"""The teacher's schedule floor (teacher.fit.min_steps) and the weak-teacher line."""

from aip.recipe import TeacherFit
from aip.teacher import fit_epochs, weak_teacher


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
