"""The command line: every command's help, and every error path exits 2 with one line and no traceback."""

import json

import pytest

from tests.conftest import assert_one_line_error, run_cli

COMMANDS = ["run", "teacher", "eval", "check", "preview", "list", "export", "predict", "visualize"]


def test_top_level_help_lists_commands():
    r = run_cli("--help")
    assert r.returncode == 0
    for c in COMMANDS:
        assert c in r.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command):
    r = run_cli(command, "--help")
    assert r.returncode == 0 and "Usage" in r.stdout


def test_list_shows_the_image_modality():
    r = run_cli("list", "--json")
    assert r.returncode == 0
    catalog = json.loads(r.stdout)
    assert "fashion-mnist" in catalog["image"]["datasets"] and "wrn_16_4" in catalog["image"]["models"]


def test_check_prints_resolved_recipe(tiny_recipe):
    r = run_cli("check", str(tiny_recipe), "--set", "train.epochs=5")
    assert r.returncode == 0
    assert "epochs = 5" in r.stdout and "scale = [" in r.stdout


def test_usage_errors_are_one_line(tiny_recipe):
    """An unknown option, a value out of range or a missing argument: one line naming it and the command's
    --help, exit 2 (typer alone draws a box of several lines)."""
    assert_one_line_error(run_cli("run", str(tiny_recipe), "--bogus"), "No such option: --bogus",
                          "run --help")  # the command path: `aip run`, or `python -m aip run`
    assert_one_line_error(run_cli("preview", str(tiny_recipe), "--count", "0"), "'--count'",
                          "greater than or equal to 1")
    assert_one_line_error(run_cli("sweep"), "Missing argument 'path'", "sweep --help")
    alone = run_cli()  # `aip` alone: the help, and a success (click's `no_args_is_help` exits 2)
    assert alone.returncode == 0 and "Usage: " in alone.stdout and "Commands" in alone.stdout, alone.stderr
    helped = run_cli("check", "--help")
    assert helped.returncode == 0 and "check [OPTIONS]" in helped.stdout


def test_paths_the_system_refuses_are_one_line(tiny_recipe, tmp_path):
    """A path too long for the file system (as a recipe, an --out, a checkpoint to predict with, a sweep folder)
    and a device as a source: one line naming the path, shortened, and the fix, exit 2 (the argument is wrong);
    no traceback."""
    long = "a" * 5000
    for args in (("run", f"{long}.toml"), ("run", str(tiny_recipe), "--out", str(tmp_path / long)),
                 ("predict", str(tmp_path / long), "x.wav"), ("report", str(tmp_path / long))):
        r = run_cli(*args)
        assert_one_line_error(r, "File name too long", "characters); shorten the path")
        assert len(r.stderr) < 300
    assert_one_line_error(run_cli("preview", str(tiny_recipe), "--set", "source.uri='/dev/null'"),
                          "/dev/null is not a regular file")


def test_only_path_errors_become_one_line_errors():
    """An OSError on a path the user gave has a fix to name; any other OSError is a bug and keeps its
    traceback."""
    import errno

    from aip.errors import path_error_line

    line = path_error_line(OSError(errno.ENOSPC, "No space left on device", "/some/run/last.pt"))
    assert line == ("No space left on device: /some/run/last.pt; free disk space, or choose another disk (--out, or "
                    "AIP_CACHE for the cache)")
    assert path_error_line(OSError(errno.ENOSPC, "No space left on device")) is None  # no path: not the user's
    assert path_error_line(OSError(errno.EIO, "Input/output error", "/x")) is None


def test_unknown_key_and_wrong_type(tiny_recipe):
    assert_one_line_error(run_cli("check", str(tiny_recipe), "--set", "train.epoch=3"), "train.epoch")
    assert_one_line_error(run_cli("run", str(tiny_recipe), "--set", "train.lr=fast"), "train.lr", "a number")


def test_missing_recipe_file(tmp_path):
    assert_one_line_error(run_cli("run", str(tmp_path / "nope.toml")), "does not exist")


def test_missing_and_corrupt_source_image(tiny_recipe, tmp_path):
    assert_one_line_error(run_cli("preview", str(tiny_recipe), "--set", f"source.uri='{tmp_path}/none.jpg'"),
                          "does not exist")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    assert_one_line_error(run_cli("preview", str(tiny_recipe), "--set", f"source.uri='{bad}'"),
                          "cannot read source image", code=1)  # there, but damaged: a failure at run time


def test_unreachable_url(tiny_recipe):
    assert_one_line_error(run_cli("preview", str(tiny_recipe), "--set", "source.uri='http://127.0.0.1:9/x.png'"),
                          "could not download", code=1)


def test_unknown_model_and_dataset(tiny_recipe):
    assert_one_line_error(run_cli("teacher", str(tiny_recipe), "--set", "teacher.arch=resnet9000"), "resnet9000")
    assert_one_line_error(run_cli("check", str(tiny_recipe), "--set", "student.arch=wrn_17_2"), "6n+4")
    assert_one_line_error(run_cli("check", str(tiny_recipe), "--set", "eval.dataset=mnist"), "mnist", "fashion-mnist")


def test_missing_dataset_folder(tiny_recipe, tmp_path):
    assert_one_line_error(run_cli("teacher", str(tiny_recipe), "--set", f"eval.root='{tmp_path}/nothing'"),
                          "nothing", code=1)  # the recipe is valid; its dataset is missing


def test_class_count_mismatch(tiny_recipe, tmp_path):
    """A 10-class teacher checkpoint for a 4-class dataset is refused before any training."""
    import torch

    from modalities.image.models import build

    model = build("cnn", num_classes=10, in_channels=3, pretrained=False, kwargs={"width": 8},
                  dataset_norm=([0.5] * 3, [0.25] * 3))
    ck = tmp_path / "teacher10.pt"
    torch.save(model.state_dict(), ck)
    r = run_cli("run", str(tiny_recipe), "--out", str(tmp_path / "run"), "--device", "cpu",
                "--set", "teacher.kind='checkpoint'", "--set", f"teacher.checkpoint='{ck}'",
                "--set", "teacher.kwargs={width=8}")
    assert_one_line_error(r, "10", "4", code=1)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_unwritable_run_dir(tiny_recipe, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    assert_one_line_error(run_cli("run", str(tiny_recipe), "--out", str(blocker / "run"), "--device", "cpu"),
                          "not writable")  # a file where --out needs a folder: exit 2


def test_eval_needs_an_existing_checkpoint(tiny_recipe, tmp_path):
    assert_one_line_error(run_cli("eval", str(tiny_recipe), "--checkpoint", str(tmp_path / "x.pt")), "does not exist")


def test_bad_device(tiny_recipe):
    assert_one_line_error(run_cli("preview", str(tiny_recipe), "--device", "tpu"), "unknown device")


def test_preview_writes_pngs(tiny_recipe, tmp_path):
    r = run_cli("preview", str(tiny_recipe), "--out", str(tmp_path / "p"), "--count", "16")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p" / "views.png").stat().st_size > 1000
    assert (tmp_path / "p" / "augmented.png").stat().st_size > 1000
