"""A hostile but fair user: unsafe checkpoints, two runs at once, a user's folder as --out, a full disk, bad
devices, sources and caches. Each case must end in one line (an ``AipError``, exit 2 from the CLI) with the
user's files intact and nothing from a file executed."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aip import checkpoint, rundir
from aip import recipe as R
from aip.cache import cache_dir
from aip.errors import AipError
from aip.hardware import resolve_device
from aip.registry import load_modality
from aip.run import evaluate_checkpoint, preview, run
from aip.teacher import load_teacher, teacher_path
from modalities.image.config import ImageSourceConfig
from modalities.image.models import build
from modalities.image.source import load_image
from tests.conftest import ROOT, assert_one_line_error, cnn, full_disk, one_line, run_cli

CPU = torch.device("cpu")


class Payload:
    """Unpickling this creates a folder: proof that code from the file ran."""

    def __init__(self, proof: Path) -> None:
        self.proof = proof

    def __reduce__(self):
        return os.mkdir, (str(self.proof),)


def code_pickle(path: Path, proof: Path, *, wrap: bool = True) -> Path:
    torch.save({"student": Payload(proof), "fingerprint": "x"} if wrap else Payload(proof), path)
    return path


def teacher_from(tiny_recipe: Path, ck: Path, *extra: str) -> R.Recipe:
    return R.load(tiny_recipe, ["teacher.kind='checkpoint'", f"teacher.checkpoint='{ck.as_posix()}'", *extra])


def load_recipe_teacher(recipe: R.Recipe) -> torch.nn.Module:
    modality = load_modality(recipe.modality)
    return load_teacher(recipe, modality, device=CPU, data=modality.data(recipe, split="test", train=False))


# ------------------------------------------------------------------------------------- untrusted checkpoints
def test_a_checkpoint_with_code_is_refused_and_nothing_runs(tmp_path):
    proof = tmp_path / "ran"
    with pytest.raises(AipError) as e:
        checkpoint.load(code_pickle(tmp_path / "evil.pt", proof))
    one_line(e, "evil.pt", "does not run code", "posix.mkdir")
    assert not proof.exists()
    import pickle  # the same payload in a plain pickle (not torch's format) is refused the same way

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"w": Payload(proof)}, protocol=4))
    with pytest.raises(AipError) as e:
        checkpoint.load(tmp_path / "evil.pkl")
    one_line(e, "evil.pkl")
    assert not proof.exists()


def test_eval_of_a_checkpoint_with_code_is_one_line(tiny_recipe, tmp_path):
    proof = tmp_path / "ran"
    evil = code_pickle(tmp_path / "best.pt", proof)
    assert_one_line_error(run_cli("eval", str(tiny_recipe), "--checkpoint", str(evil), "--device", "cpu"),
                          "best.pt", "tensors and plain values", code=1)
    assert not proof.exists()


def test_a_teacher_checkpoint_with_code_is_refused(tiny_recipe, tmp_path):
    proof = tmp_path / "ran"
    recipe = teacher_from(tiny_recipe, code_pickle(tmp_path / "teacher.pt", proof, wrap=False))
    with pytest.raises(AipError) as e:
        load_recipe_teacher(recipe)
    one_line(e, "teacher.pt")
    assert not proof.exists()


def test_a_last_pt_with_code_is_refused_before_resuming(tiny_recipe, tmp_path):
    proof, out = tmp_path / "ran", tmp_path / "run"
    out.mkdir()
    code_pickle(out / "last.pt", proof)
    with pytest.raises(AipError) as e:
        run(R.load(tiny_recipe), out=out, device=CPU)
    one_line(e, "last.pt", "--out NEW_DIR")
    assert not proof.exists()
    assert sorted(p.name for p in out.iterdir()) == ["last.pt"]  # nothing added to the folder


def test_a_cached_teacher_with_code_is_refused(tiny_recipe, tmp_path):
    recipe = R.load(tiny_recipe)
    modality = load_modality("image")
    test = modality.data(recipe, split="test", train=False)
    proof = tmp_path / "ran"
    legacy = teacher_path(recipe, test).with_suffix(".pt")  # the cache format of older versions
    torch.save({"state_dict": Payload(proof), "num_classes": 4}, legacy)
    with pytest.raises(AipError) as e:
        load_teacher(recipe, modality, device=CPU, data=test, train_if_missing=False)
    one_line(e, legacy.name)
    assert not proof.exists()


def test_cached_teachers_are_safetensors_and_old_pt_caches_still_load(tiny_recipe):
    recipe = R.load(tiny_recipe)
    modality = load_modality("image")
    test = modality.data(recipe, split="test", train=False)
    model = cnn()
    path = teacher_path(recipe, test)
    assert path.suffix == ".safetensors"
    checkpoint.save_weights(model.state_dict(), {"num_classes": 4}, path)
    assert path.read_bytes()[8:9] == b"{"  # a JSON header, then raw tensor bytes: no pickle
    loaded = load_teacher(recipe, modality, device=CPU, data=test, train_if_missing=False)
    x = torch.rand(2, 3, 24, 24)
    assert torch.equal(loaded(x), model.eval()(x))
    path.unlink()
    torch.save({"state_dict": model.state_dict(), "num_classes": 4}, path.with_suffix(".pt"))
    assert torch.equal(load_teacher(recipe, modality, device=CPU, data=test, train_if_missing=False)(x), loaded(x))


def test_a_teacher_checkpoint_holding_a_whole_model_or_a_list(tiny_recipe, tmp_path):
    proof = tmp_path / "ran"
    whole = tmp_path / "whole.pt"
    torch.save(cnn(), whole)  # a pickled nn.Module: its classes would have to be imported and called
    with pytest.raises(AipError) as e:
        load_recipe_teacher(teacher_from(tiny_recipe, whole, "teacher.kwargs={width=8}"))
    one_line(e, "whole.pt", "state_dict()")
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], listed)
    with pytest.raises(AipError) as e:
        load_recipe_teacher(teacher_from(tiny_recipe, listed, "teacher.kwargs={width=8}"))
    one_line(e, "list.pt", "holds a list")
    assert not proof.exists()


def test_a_teacher_saved_from_the_bare_network_loads_with_the_recipes_normalisation(tiny_recipe, tmp_path):
    """What training code elsewhere saves: ``net.state_dict()`` of the network alone, here in a DataParallel
    wrapper inside ``{"model": ...}``, or as safetensors. The teacher computes that network on inputs
    normalised as the recipe says (the dataset's statistics)."""
    from safetensors.torch import save_file

    from modalities.image.datasets import norm_stats

    reference = build("cnn", num_classes=4, in_channels=3, pretrained=False, kwargs={"width": 8},
                      dataset_norm=norm_stats("imagefolder", channels=3)).eval()
    net = reference.model.state_dict()
    torch.save({"model": {"module." + k: v for k, v in net.items()}, "epoch": 30}, tmp_path / "elsewhere.pt")
    save_file({k: v.contiguous() for k, v in net.items()}, str(tmp_path / "model.safetensors"))
    x = torch.rand(3, 3, 24, 24)
    for name in ("elsewhere.pt", "model.safetensors"):
        teacher = load_recipe_teacher(teacher_from(tiny_recipe, tmp_path / name, "teacher.kwargs={width=8}"))
        torch.testing.assert_close(teacher(x), reference(x))


def test_a_state_dict_that_does_not_fit_names_the_keys(tiny_recipe, tmp_path):
    ck = tmp_path / "narrow.pt"
    state = cnn(width=4).state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state[next(iter(state))]
    torch.save(state, ck)
    with pytest.raises(AipError) as e:
        load_recipe_teacher(teacher_from(tiny_recipe, ck, "teacher.kwargs={width=8}"))
    msg = one_line(e, "narrow.pt", "missing keys", "unexpected keys extra.weight", "shape of", "teacher.arch")
    assert "Error(s) in loading" not in msg
    student = tmp_path / "student.pt"
    torch.save({"student": cnn(width=4).state_dict()}, student)
    with pytest.raises(AipError) as e:
        evaluate_checkpoint(R.load(tiny_recipe), student, device=CPU)
    one_line(e, "student.pt", "shape of", "pass the recipe the run used")


def test_a_corrupt_last_pt_says_what_to_do(tiny_recipe, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(AipError) as e:
        run(R.load(tiny_recipe), out=out, device=CPU)
    one_line(e, "last.pt", "delete", "--out NEW_DIR")
    assert (out / "last.pt").read_bytes() == b"PK\x03\x04 truncated"


# ------------------------------------------------------------------------------------------- run directories
def test_two_runs_into_one_folder(tiny_recipe, tmp_path):
    """The second run names the process that holds the folder and exits 1; the first run's files are kept."""
    out = tmp_path / "run"
    recipe = R.load(tiny_recipe)
    with rundir.claimed(out, fingerprint=rundir.fingerprint(recipe)):
        with pytest.raises(AipError) as e:  # flock locks conflict between two opens, even in one process
            with rundir.claimed(out, fingerprint=rundir.fingerprint(recipe)):
                pass
        one_line(e, "in use by another aip run", f"process {os.getpid()}")
        r = run_cli("run", str(tiny_recipe), "--out", str(out), "--device", "cpu")
        assert_one_line_error(r, "in use", f"process {os.getpid()}", code=1)
    assert sorted(p.name for p in out.iterdir()) == [rundir.MARKER]


def test_a_killed_run_leaves_no_lock_behind(tiny_recipe, tmp_path):
    """The lock is the operating system's: it goes with the process, even after ``kill -9``."""
    out = tmp_path / "run"
    fingerprint = rundir.fingerprint(R.load(tiny_recipe))
    code = ("import sys, time\nfrom aip import rundir\n"
            f"with rundir.claimed(__import__('pathlib').Path({str(out)!r}), fingerprint={fingerprint!r}):\n"
            "    print('claimed', flush=True)\n    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "claimed"  # an event, not a sleep
        with pytest.raises(AipError, match=f"process {holder.pid}"):
            with rundir.claimed(out, fingerprint=fingerprint):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with rundir.claimed(out, fingerprint=fingerprint):
        pass


def test_out_into_a_users_folder_is_refused(tiny_recipe, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    mine = "# my own recipe, with comments\nmodality = 'image'\n"
    (folder / "recipe.toml").write_text(mine)
    (folder / "metrics.json").write_text("{}")
    r = run_cli("run", str(tiny_recipe), "--out", str(folder), "--device", "cpu")
    assert_one_line_error(r, "not empty", "--force")
    # --force writes beside a user's files, never over them
    r = run_cli("run", str(tiny_recipe), "--out", str(folder), "--device", "cpu", "--force")
    assert_one_line_error(r, "recipe.toml", "metrics.json")
    assert (folder / "recipe.toml").read_text() == mine and (folder / "metrics.json").read_text() == "{}"
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.json", "recipe.toml"]
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    fingerprint = rundir.fingerprint(R.load(tiny_recipe))
    with pytest.raises(AipError, match="--force"):
        with rundir.claimed(notes, fingerprint=fingerprint):
            pass
    with rundir.claimed(notes, fingerprint=fingerprint, force=True):
        pass
    assert (notes / "todo.txt").read_text() == "keep me"


def test_a_run_of_another_recipe_without_a_checkpoint_is_refused(tiny_recipe, tmp_path):
    out = tmp_path / "run"
    with rundir.claimed(out, fingerprint="a"):
        (out / "recipe.toml").write_text("x")  # killed before its first checkpoint: known by its marker
    with pytest.raises(AipError, match="different recipe"):
        with rundir.claimed(out, fingerprint="b"):
            pass
    with rundir.claimed(out, fingerprint="a"):  # the same recipe resumes (here: starts again)
        pass


def test_a_run_that_fails_before_training_leaves_no_folder(tiny_recipe, tmp_path):
    out = tmp_path / "runs" / "tiny"
    with pytest.raises(AipError, match="does not exist"):
        run(teacher_from(tiny_recipe, tmp_path / "missing.pt"), out=out, device=CPU)
    assert not (tmp_path / "runs").exists()
    existing = tmp_path / "empty"
    existing.mkdir()
    with pytest.raises(AipError):
        run(teacher_from(tiny_recipe, tmp_path / "missing.pt"), out=existing, device=CPU)
    assert existing.is_dir() and not any(existing.iterdir())  # the user's own (empty) folder stays


def test_a_step_whose_views_cannot_fit_in_memory_is_refused(tiny_recipe, tmp_path, monkeypatch):
    """A huge train.batch_size grew the process until the system killed it; now one line, and no folder."""
    from aip import hardware

    recipe = R.load(tiny_recipe, ["train.batch_size=100000", "train.samples_per_epoch=100000"])
    views = 100_000 * recipe.train.view_pool
    monkeypatch.setattr(hardware, "free_memory", lambda device: 2**30)  # 1 GiB free
    out = tmp_path / "runs" / "huge"
    with pytest.raises(AipError) as e:
        run(recipe, out=out, device=CPU)
    need = views * 3 * 24 * 24 * 4 / 2**30  # float32 views of the tiny recipe's 3 x 24 x 24
    one_line(e, f"one step's {views:,} views", f"need {need:,.1f} GiB, more than the 1.0 GiB free on cpu",
             "lower train.batch_size")
    assert not (tmp_path / "runs").exists()
    small = R.load(tiny_recipe)
    hardware.check_step_memory(small, torch.zeros(2, 3, 24, 24), CPU)  # 64 views of 6.9 KB: let through


# ---------------------------------------------------------------------------------------------- a full disk
def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    last = tmp_path / "last.pt"
    checkpoint.save_atomic({"step": 1, "w": torch.ones(3)}, last)
    full_disk(monkeypatch)
    with pytest.raises(AipError) as e:
        checkpoint.save_atomic({"step": 2, "w": torch.zeros(3)}, last)
    one_line(e, f"no space left on device writing {last}", "run the same command to resume")
    assert checkpoint.load(last)["step"] == 1 and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_run_on_a_full_disk_stops_with_one_line_and_keeps_its_checkpoint(tiny_recipe, tmp_path, monkeypatch):
    ck = tmp_path / "teacher.pt"
    torch.save(cnn().state_dict(), ck)  # a ready teacher: no teacher training in this test
    recipe = teacher_from(tiny_recipe, ck, "teacher.kwargs={width=8}", "train.epochs=2")
    out = tmp_path / "run"
    run(recipe, out=out, device=CPU, stop_after_epochs=1)
    saved = checkpoint.load(out / "last.pt")
    full_disk(monkeypatch)
    with pytest.raises(AipError) as e:
        run(recipe, out=out, device=CPU)
    one_line(e, "no space left on device writing", str(out), "run the same command to resume")
    kept = checkpoint.load(out / "last.pt")
    assert kept["state"]["step"] == saved["state"]["step"] == recipe.train.steps_per_epoch
    assert all(torch.equal(v, saved["student"][k]) for k, v in kept["student"].items())
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_full_disk_while_caching_a_teacher(tmp_path, monkeypatch):
    path = tmp_path / "teacher.safetensors"
    full_disk(monkeypatch)
    with pytest.raises(AipError) as e:
        checkpoint.save_weights(cnn().state_dict(), {"num_classes": 4}, path)
    one_line(e, "no space left on device", str(path))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ devices, sources, caches, paths
@pytest.mark.parametrize("name", ["mps", "xpu", "meta", *(["cuda:99"] if torch.cuda.is_available() else [])])
def test_devices_aip_does_not_train_on(name):
    with pytest.raises(AipError) as e:
        resolve_device(name)
    one_line(e, f"--device {name}", "cpu")


def test_a_device_name_through_the_cli(tiny_recipe):
    assert_one_line_error(run_cli("preview", str(tiny_recipe), "--device", "meta"), "--device meta")


class _Broken(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int):
        raise AipError("cannot read image x.png (truncated); replace or delete the file")


def test_an_error_in_a_dataloader_worker_is_one_line():
    """torch re-raises a worker's error with the worker's whole traceback as its message."""
    from aip.errors import one_line

    with pytest.raises(AipError) as e:
        next(iter(torch.utils.data.DataLoader(_Broken(), num_workers=1)))
    assert "Original Traceback" in str(e.value)
    assert one_line(e.value) == "cannot read image x.png (truncated); replace or delete the file"
    assert one_line(AipError("plain")) == "plain"


def test_a_corrupt_training_image_read_by_workers_is_one_line(tmp_path):
    from tests.conftest import TINY_RECIPE, write_stripes_folder

    root = write_stripes_folder(tmp_path / "set", train_per_class=10, test_per_class=2)
    (root / "train" / "warm_h" / "000.png").write_bytes(b"not a png")
    recipe = tmp_path / "r.toml"
    recipe.write_text(TINY_RECIPE.format(root=root.as_posix(), epochs=1))
    r = run_cli("teacher", str(recipe), "--set", "eval.workers=2")
    assert r.returncode == 1, r.stderr  # a damaged dataset: a failure at run time
    assert "Traceback" not in r.stderr, r.stderr  # neither the worker's nor a thread's at shutdown
    error = [line for line in r.stderr.splitlines() if "error: " in line]  # the teacher's progress bar is on stderr
    assert len(error) == 1 and error[0].endswith("replace or delete the file"), r.stderr
    assert "cannot read image" in error[0] and "000.png" in error[0]


def test_a_scikit_image_item_that_is_not_one_image(tiny_recipe, monkeypatch):
    with pytest.raises(AipError) as e:
        load_image(ImageSourceConfig(uri="skimage:stereo_motorcycle", size=32))
    one_line(e, "skimage:stereo_motorcycle", "not one image")
    with pytest.raises(AipError, match="not one image"):  # at load time, before any work
        R.load(tiny_recipe, ["source.uri='skimage:stereo_motorcycle'"])
    import skimage.data  # a loader that returns several arrays is refused when it is called

    monkeypatch.setattr(skimage.data, "chelsea", lambda: (skimage.data.camera(), skimage.data.camera()))
    with pytest.raises(AipError, match="it gives a tuple"):
        load_image(ImageSourceConfig(uri="skimage:chelsea", size=32))


def test_aip_cache_a_regular_file(tmp_path, monkeypatch):
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    monkeypatch.setenv("AIP_CACHE", str(blocker))
    with pytest.raises(AipError) as e:
        cache_dir("teachers")
    one_line(e, "AIP_CACHE", "is a file")


def test_aip_cache_a_read_only_folder(tmp_path, monkeypatch):
    ro = tmp_path / "cache"
    ro.mkdir()
    ro.chmod(0o555)
    monkeypatch.setenv("AIP_CACHE", str(ro))
    if os.geteuid() == 0:  # root writes anywhere: refuse as a read-only file system would
        real = Path.mkdir

        def mkdir(self, *args, **kwargs):
            if ro in self.parents:
                raise PermissionError(errno.EROFS, os.strerror(errno.EROFS), str(self))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", mkdir)
    try:
        with pytest.raises(AipError) as e:
            cache_dir("teachers")
        one_line(e, "AIP_CACHE", "not writable")
    finally:
        ro.chmod(0o755)


def test_aip_cache_a_file_through_the_cli(tiny_recipe, tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    r = run_cli("teacher", str(tiny_recipe), "--device", "cpu", env={"AIP_CACHE": str(blocker)})
    assert_one_line_error(r, "AIP_CACHE", "is a file")


def test_preview_under_a_regular_file(tiny_recipe, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file")
    with pytest.raises(AipError) as e:
        preview(R.load(tiny_recipe), out=blocker / "p", count=2, device=CPU)
    one_line(e, "output folder", "--out")


def test_a_source_typo_is_caught_by_check_and_before_the_teacher(tiny_recipe, tmp_path, isolated_cache):
    typo = tmp_path / "photo.jgp"
    assert_one_line_error(run_cli("check", str(tiny_recipe), "--set", f"source.uri='{typo.as_posix()}'"),
                          "photo.jgp", "does not exist")
    with pytest.raises(AipError, match="is a directory"):
        R.load(tiny_recipe, [f"source.uri='{tmp_path.as_posix()}'"])
    for uri in ("skimage:astronuat", "synthetic:nosie", "dataset:test"):
        with pytest.raises(AipError, match=uri.split(":")[1]):
            R.load(tiny_recipe, [f"source.uri='{uri}'"])
    out = tmp_path / "run"
    r = run_cli("run", str(tiny_recipe), "--out", str(out), "--device", "cpu",
                "--set", f"source.uri='{typo.as_posix()}'")
    assert_one_line_error(r, "does not exist")
    assert not out.exists() and not (isolated_cache / "teachers").exists()  # no teacher was trained


def test_a_video_source_typo_is_caught_at_load(tmp_path):
    with pytest.raises(AipError) as e:
        R.load(ROOT / "recipes" / "ucf101.toml", [f"source.uri='{(tmp_path / 'clip.mp44').as_posix()}'"])
    one_line(e, "clip.mp44", "does not exist")
    with pytest.raises(AipError, match="is a directory"):
        R.load(ROOT / "recipes" / "ucf101.toml", [f"source.uri='{tmp_path.as_posix()}'"])


def test_a_dataset_of_one_class_is_refused_before_any_work(tiny_recipe, stripes_root, tmp_path):
    """With one class every prediction is right: 100 % for teacher and student would mean nothing."""
    import shutil

    one = tmp_path / "one"
    for split in ("train", "val"):
        first = sorted(p for p in (stripes_root / split).iterdir() if p.is_dir())[0]
        shutil.copytree(first, one / split / first.name)
    r = run_cli("run", str(tiny_recipe), "--set", f"eval.root='{one.as_posix()}'", "--out", str(tmp_path / "run"))
    assert_one_line_error(r, "the dataset has 1 class (", "a classifier needs at least 2", code=1)
    assert not (tmp_path / "run").exists()


# --- class-folder datasets: symbolic links ----------------------------------------------------------------------


def image_tree(root: Path, *, per_class: int = 3) -> Path:
    """A tiny imagefolder (train/ and val/, classes a and b, a few 8-px PNGs)."""
    from tests.conftest import write_stripes_folder

    return write_stripes_folder(root, size=8, train_per_class=per_class, test_per_class=per_class)


def read_split(root: Path, split: str = "train"):
    from modalities.image import datasets

    return datasets.load("imagefolder", root=root, split=split, train=False, download=False, size=8, channels=3)


@pytest.mark.parametrize("link, target", [("warm_h/up", ".."), ("warm_h/self", "."), ("warm_h/deep/top", "../..")])
def test_a_symlink_loop_in_an_image_folder_is_refused(tmp_path, link, target):
    """`ln -s .. train/CLASS/up` made torchvision's ImageFolder (os.walk(followlinks=True)) read every image of
    the split about 40 times over, all labelled CLASS, and the run exited 0; now one line names the link."""
    root = image_tree(tmp_path / "ds")
    (root / "train" / link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, root / "train" / link)
    with pytest.raises(AipError) as e:
        read_split(root)
    one_line(e, f"{root / 'train' / link} is a symbolic link to", "a loop", "remove the link")


def test_a_class_folder_linked_to_its_split_is_a_loop(tmp_path):
    root = image_tree(tmp_path / "ds")
    os.symlink(".", root / "val" / "zz")  # val/zz -> val: a class folder (not in train: refused as such first)
    os.symlink(".", root / "train" / "zz")
    with pytest.raises(AipError) as e:
        read_split(root)
    one_line(e, "zz is a symbolic link to", "a loop")


def test_symlinked_images_and_folders_that_are_not_loops_are_read(tmp_path):
    """A dataset that is a farm of links (class folders and images linked from elsewhere) reads as if copied."""
    store = image_tree(tmp_path / "store")
    farm = tmp_path / "farm"
    for split in ("train", "val"):
        (farm / split / "warm_v").mkdir(parents=True)
        os.symlink(store / split / "warm_h", farm / split / "warm_h")  # a whole class folder linked
        for f in sorted((store / split / "warm_v").iterdir()):
            os.symlink(f, farm / split / "warm_v" / f.name)  # each image linked
        os.symlink(store / split / "cool_h", farm / split / "warm_v" / "more")  # a linked sub-folder, no loop
    data = read_split(farm)
    assert data.classes == ["warm_h", "warm_v"]
    assert sorted(int(t) for _, t in (data.dataset[i] for i in range(len(data.dataset)))) == [0] * 3 + [1] * 6


# --- files that are not regular files: FIFOs, devices, broken links ------------------------------------------


def finishes(fn, *, seconds: float = 60.0) -> BaseException | None:
    """Run ``fn`` in a thread; the exception it raised (None if none). Fails the test if it is still running
    after ``seconds``: reading a FIFO blocks until a writer comes, which would otherwise hang the suite."""
    import threading

    out: list[BaseException | None] = [None]

    def target() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 (handed to the test)
            out[0] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn} blocked (it opened a FIFO?)"
    return out[0]


def special_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / "pipe.png")
    os.symlink("/dev/zero", folder / "zero.png")
    os.symlink(folder / "gone.png", folder / "broken.png")
    return {"a named pipe (FIFO)": folder / "pipe.png", "a character device": folder / "zero.png",
            "a broken symbolic link": folder / "broken.png"}




class _Info:
    """What ``one_line`` reads from a caught exception (``.value``)."""

    def __init__(self, value: BaseException) -> None:
        self.value = value


def test_a_fifo_or_a_device_in_an_image_folder_is_refused_before_reading(tmp_path):
    """ImageFolder takes any name ending in .png: a FIFO there would block the loader, /dev/zero would never end,
    a broken link would fail in the middle of a run."""
    makers = {"a named pipe (FIFO)": os.mkfifo, "a character device": lambda p: os.symlink("/dev/zero", p),
              "a broken symbolic link": lambda p: os.symlink(p.parent / "gone.png", p)}
    for i, (kind, make) in enumerate(makers.items()):
        root = image_tree(tmp_path / str(i))
        make(root / "val" / "warm_h" / "odd.png")
        e = finishes(lambda r=root: read_split(r, "test"))
        assert isinstance(e, AipError), e
        one_line(_Info(e), f"{root / 'val' / 'warm_h' / 'odd.png'} is not a regular file but {kind}", "remove it")


def test_a_fifo_or_a_device_as_a_source_says_what_it_is(tiny_recipe, tmp_path):
    """A FIFO or a link to /dev/zero given as source.uri was reported as 'does not exist' (and reading a FIFO
    would block): the line says what it is, and nothing is opened."""
    from aip.files import regular_file

    for kind, path in special_files(tmp_path / "f").items():
        e = finishes(lambda p=path: R.load(tiny_recipe, [f"source.uri='{p.as_posix()}'"]))
        assert isinstance(e, AipError) and "\n" not in str(e), e
        assert f"source image {path}" in str(e) and (kind in str(e) or "broken symbolic link" in str(e)), e
        e = finishes(lambda p=path: regular_file(p, what="x", fix="y"))
        assert isinstance(e, AipError) and "does not exist" not in str(e), e

def test_the_readers_of_every_modality_name_a_fifo_and_do_not_block(tmp_path):
    """The input readers of `aip predict` and the audio source: image, video, audio; each asks aip.files."""
    from modalities.audio.decode import read_audio
    from modalities.image.inputs import read_image
    from modalities.video.config import VideoSourceConfig
    from modalities.video.inputs import read_video

    pipe = special_files(tmp_path / "f")["a named pipe (FIFO)"]
    for read in (lambda: read_image(pipe, size=8, channels=3, grid=False),
                 lambda: read_video(pipe, VideoSourceConfig()), lambda: read_audio(pipe, rate=16000)):
        e = finishes(read)
        assert isinstance(e, AipError), e
        one_line(_Info(e), str(pipe), "not a regular file but a named pipe")


def test_two_classes_on_one_folder_and_a_link_to_the_dataset_root_are_refused(tmp_path):
    """Found by a second hostile round: `train/cool_h -> warm_h` read the same images under two labels without a
    word, and a link to the dataset's root (above the split) was named at a deeper path than the link."""
    import shutil

    root = image_tree(tmp_path / "ds")
    shutil.rmtree(root / "train" / "cool_h")
    os.symlink("warm_h", root / "train" / "cool_h")
    with pytest.raises(AipError) as e:
        read_split(root)
    one_line(e, "class folders cool_h and warm_h", "lead to the same images (cool_h leads to", "remove the link")
    other = image_tree(tmp_path / "ds2")
    os.symlink("../..", other / "train" / "warm_h" / "up")
    with pytest.raises(AipError) as e:
        read_split(other)
    one_line(e, f"{other / 'train' / 'warm_h' / 'up'} is a symbolic link to", "a loop")


def test_a_class_sub_folder_that_cannot_be_listed_is_named(tmp_path, monkeypatch):
    """os.walk (ImageFolder's) skips a folder it cannot list without a word, leaving its images out. The tests
    run as root here, which reads any folder, so the listing's PermissionError is raised by a stand-in."""
    import aip.folders

    root = image_tree(tmp_path / "ds")
    (root / "train" / "warm_h" / "locked").mkdir()
    real = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(aip.folders.os, "scandir", scandir)
    with pytest.raises(AipError) as e:
        read_split(root)
    one_line(e, f"cannot list the folder {root / 'train' / 'warm_h' / 'locked'} (Permission denied)",
             "fix its permissions")


def test_a_recipe_that_is_a_fifo_says_what_it_is_and_does_not_block(tmp_path):
    """A named pipe as the recipe file: reading it would wait for a writer; it was called missing before."""
    pipe = tmp_path / "recipe.toml"
    os.mkfifo(pipe)
    with pytest.raises(R.RecipeError, match=r"is not a regular file but a named pipe \(FIFO\)"):
        R.load(pipe)


def test_out_that_is_a_file_is_a_usage_error_naming_it(tmp_path):
    """--out a regular file: a usage error (exit 2) saying it is a file, not the OS's bare 'File exists'; the
    file is kept as it was."""
    from aip.errors import UsageError

    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    with pytest.raises(UsageError, match="is a file, not a folder") as e, rundir.claimed(mine, fingerprint="x"):
        pass
    assert e.value.exit_code == 2 and mine.read_text() == "mine"
