"""The command line: every command's help, and every error path ends with one line and no traceback, exit 2 for
a usage error and 1 for a failure at run time."""

import json

import pytest

from tests.conftest import assert_one_line_error, cli_main, run_cli

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
    assert line == ("disk full while writing /some/run/last.pt; free disk space, or choose another disk (--out, or "
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




def test_exit_codes_by_kind(tiny_recipe, tmp_path, monkeypatch, capsys):
    """2 for what is wrong in the command or the recipe (an unknown key, a path argument that is a file where a
    folder must be); 1 for what fails while running (a damaged checkpoint given by a valid path)."""
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint")
    for args, code, text in [(("check", str(tiny_recipe), "--set", "train.epoch=3"), 2, "train.epoch"),
                             (("preview", str(tiny_recipe), "--out", str(tiny_recipe / "p")), 2, "Not a directory"),
                             (("eval", str(tiny_recipe), "--checkpoint", str(bad)), 1, "could not be read")]:
        got, err = cli_main(monkeypatch, capsys, *args)
        lines = err.strip().splitlines()
        assert got == code and len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], (args, err)


def test_path_error_codes():
    """An OSError on a path: 2 where the path given is plainly wrong (too long, under a file), else 1."""
    import errno

    from aip.errors import path_error_code

    assert path_error_code(OSError(errno.ENAMETOOLONG, "File name too long", "runs/" + "a" * 300), ["--out", "runs/"
                                                                                                   + "a" * 300]) == 2
    assert path_error_code(OSError(errno.ENOTDIR, "Not a directory", "afile/sub/x.png"), ["--out=afile/sub"]) == 2
    assert path_error_code(OSError(errno.ENOTDIR, "Not a directory", "/cache/x"), ["run", "r.toml"]) == 1
    assert path_error_code(OSError(errno.ENOSPC, "No space left on device", "runs/x/last.pt"), ["runs/x"]) == 1


def test_a_write_that_names_no_file_names_its_target(tmp_path, monkeypatch):
    """A full disk raises OSError(ENOSPC) with no file name (PIL, a plain write) or, inside torch.save, a
    RuntimeError about its stream: both become an OSError naming the file being written, which the CLI prints in
    one line; the temporary file is removed and the previous file is intact."""
    import errno

    import torch

    from aip import files
    from aip.errors import path_error_line

    target = tmp_path / "views.png"
    target.write_bytes(b"before")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as e, files.atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        full()
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)
    assert path_error_line(e.value).startswith(f"disk full while writing {target}; free disk space")
    assert target.read_bytes() == b"before" and sorted(tmp_path.iterdir()) == [target]

    def torch_full(obj, f, *args, **kwargs):
        f.write(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", torch_full)
    last = tmp_path / "last.pt"
    last.write_bytes(b"the previous checkpoint")
    with pytest.raises(OSError) as e:
        files.save_torch({"w": 1}, last)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(last) and "unexpected pos" in e.value.strerror
    assert last.read_bytes() == b"the previous checkpoint" and sorted(tmp_path.iterdir()) == [last, target]


def test_preview_on_a_full_disk_is_one_line_exit_1(tiny_recipe, tmp_path, monkeypatch, capsys):
    """The issue's case: `aip preview` into a full disk gave a traceback (the OSError named no file)."""
    import errno

    from PIL import Image

    def full(self, fp, *args, **kwargs):  # PIL writes the file itself; a full disk fails its write, unnamed
        with open(fp, "wb") as f:
            f.write(b"\x89PNG")
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "p"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    monkeypatch.setattr(Image.Image, "save", full)
    code, err = cli_main(monkeypatch, capsys, "preview", str(tiny_recipe), "--out", str(out), "--count", "2")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: disk full while writing {out}") and "--out" in lines[0], err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # no half-written file, the user's kept


def test_a_resume_on_a_full_disk_is_one_line_exit_1(tiny_recipe, tmp_path, monkeypatch, capsys):
    """The issue's other case: resuming a run into a full disk gave a traceback (its first write, the resolved
    recipe, failed with an OSError that named no file); now one line, exit 1, and the checkpoint intact."""
    import errno
    import pathlib

    import torch

    import aip.recipe as R
    from aip import checkpoint
    from aip.run import run
    from tests.conftest import cnn

    ck = tmp_path / "teacher.pt"
    torch.save(cnn().state_dict(), ck)  # a ready teacher: no teacher training in this test
    args = ["--set", "teacher.kind='checkpoint'", "--set", f"teacher.checkpoint='{ck.as_posix()}'",
            "--set", "teacher.kwargs={width=8}", "--set", "train.epochs=2", "--set", "train.samples_per_epoch=256"]
    recipe = R.load(tiny_recipe, [a for a in args if a != "--set"])
    out = tmp_path / "run"
    run(recipe, out=out, device=torch.device("cpu"), stop_after_epochs=1)
    saved = checkpoint.load(out / "last.pt")["state"]["step"]

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_text", full)
    code, err = cli_main(monkeypatch, capsys, "run", str(tiny_recipe), *args, "--out", str(out), "--device", "cpu")
    lines = err.strip().splitlines()
    assert code == 1 and "Traceback" not in err, err
    assert lines[-1].startswith(f"error: disk full while writing {out}") and "--out" in lines[-1], err
    assert checkpoint.load(out / "last.pt")["state"]["step"] == saved
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
