"""`aip check`'s preflight: whether a run can start here (dataset, source, teacher, device), on fixture folders
and pre-filled caches; `--preflight` exits with 1 when it cannot."""

import pytest
import torch

from aip.cache import download_path
from aip.modality import DataLocator
from aip.preflight import preflight
from aip.recipe import load
from aip.registry import load_modality
from tests.conftest import ROOT, run_cli

KINETICS = ROOT / "recipes" / "kinetics400.toml"


def states(checks):
    return {c.name: c.state for c in checks}


@pytest.mark.parametrize("name", ["image", "video", "audio"])
def test_builtin_modalities_locate_their_data(name):
    assert isinstance(load_modality(name), DataLocator)


def test_image_folder_present_and_teacher_trained_here(tiny_recipe):
    checks = preflight(load(tiny_recipe), device="cpu")
    assert states(checks) == {"dataset": "ready", "source": "ready", "teacher": "build", "device": "ready",
                              "memory": "ready"}
    assert "test items" in checks[0].detail


def test_cached_teacher_is_ready(tiny_recipe):
    from aip.teacher import teacher_path

    r = load(tiny_recipe)
    path = teacher_path(r, load_modality("image").data(r, split="test", train=False))
    path.write_bytes(b"")  # only its presence is checked
    assert states(preflight(r, device="cpu"))["teacher"] == "ready"
    other = load(tiny_recipe, ["teacher.arch='resnet18'"])
    assert states(preflight(other, device="cpu"))["teacher"] == "build"


def test_missing_image_folder(tiny_recipe, tmp_path):
    r = load(tiny_recipe, [f"eval.root='{tmp_path / 'nothing'}'"])
    checks = preflight(r, device="cpu")
    assert states(checks)["dataset"] == "missing" and "nothing" in checks[0].detail
    assert states(checks)["teacher"] == "build"


def test_downloadable_dataset_absent_would_download(tmp_path):
    r = load(ROOT / "recipes" / "cifar10.toml", [f"eval.root='{tmp_path}'"])
    assert states(preflight(r, device="cpu"))["dataset"] == "download"
    r = load(ROOT / "recipes" / "cifar10.toml", [f"eval.root='{tmp_path}'", "eval.download=false"])
    assert states(preflight(r, device="cpu"))["dataset"] == "missing"


def test_kinetics_recipe_says_dataset_absent_and_source_not_cached(tmp_path):
    r = load(KINETICS, [f"eval.root='{tmp_path / 'k400'}'"])
    checks = {c.name: c for c in preflight(r, device="cpu")}
    assert checks["dataset"].state == "missing" and "k400" in checks["dataset"].detail
    assert checks["source"].state == "download" and "not cached" in checks["source"].detail
    cached = download_path(r.source.uri)  # as a run that had the network would have left it
    cached.write_bytes(b"\xff\xd8 a jpeg")
    for cls in ("abseiling", "air drumming"):
        (tmp_path / "k400" / "val" / cls).mkdir(parents=True)
        (tmp_path / "k400" / "val" / cls / "clip.mp4").write_bytes(b"")
    checks = {c.name: c for c in preflight(r, device="cpu")}
    assert checks["source"].state == "ready"
    assert checks["dataset"].state == "ready" and "2 test videos" in checks["dataset"].detail


def test_offline_sets_are_built_or_present(tmp_path):
    r = load(ROOT / "recipes" / "spoken-keywords.toml", [f"eval.root='{tmp_path}'"])
    assert states(preflight(r, device="cpu"))["dataset"] == "build"
    from modalities.audio.keywords import VERSION

    (tmp_path / f"spoken-keywords-v{VERSION + 1}-0123abcd").mkdir()  # another version's set: not this one
    assert states(preflight(r, device="cpu"))["dataset"] == "build"
    (tmp_path / f"spoken-keywords-v{VERSION}-0123abcd").mkdir()
    assert states(preflight(r, device="cpu"))["dataset"] == "ready"
    video = load(ROOT / "recipes" / "motion.toml", [f"eval.root='{tmp_path}'"])
    assert states(preflight(video, device="cpu"))["dataset"] == "build"


def test_speech_commands_folder(tmp_path):
    r = load(ROOT / "recipes" / "speechcommands.toml", [f"eval.root='{tmp_path}'", "eval.download=false"])
    assert states(preflight(r, device="cpu"))["dataset"] == "missing"
    (tmp_path / "speech_commands_v0.02").mkdir()
    (tmp_path / "speech_commands_v0.02" / "testing_list.txt").write_text("yes/a.wav\n")
    assert states(preflight(r, device="cpu"))["dataset"] == "ready"


def test_dataset_source_follows_the_dataset(tiny_recipe, tmp_path):
    r = load(tiny_recipe, ["source.uri='dataset:train'", f"eval.root='{tmp_path / 'nothing'}'"])
    assert states(preflight(r, device="cpu"))["source"] == "missing"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
def test_device_not_there():
    r = load(ROOT / "recipes" / "fashion-mnist.toml")
    assert states(preflight(r, device="cuda"))["device"] == "missing"


def test_cli_prints_one_line_per_check_and_strict_exits_1(tmp_path):
    args = ["check", str(KINETICS), "--set", f"eval.root='{tmp_path}'"]
    lenient = run_cli(*args)
    assert lenient.returncode == 0, lenient.stderr
    lines = [line for line in lenient.stderr.splitlines() if line.startswith("# preflight ")]
    assert [line.split()[2] for line in lines] == ["dataset", "source", "teacher", "device", "memory"]
    assert "missing" in lines[0] and "not cached" in lines[1]
    assert "cannot start here" in lenient.stderr.splitlines()[-1]
    strict = run_cli(*args, "--preflight")
    assert strict.returncode == 1 and strict.stdout == lenient.stdout
    schema = run_cli(*args, "--schema-only")
    assert schema.returncode == 0 and "# preflight" not in schema.stderr


def test_cli_strict_passes_when_the_run_can_start(tiny_recipe):
    r = run_cli("check", str(tiny_recipe), "--preflight", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[-1] == "# the run can start here"


def test_models_too_large_for_memory_are_refused_before_allocation(tiny_recipe, tmp_path):
    """A student of width 10**8 (about 10**18 parameters) passes the schema: the preflight's memory line names the
    field, the estimate and the limit, and `aip run` and `aip bench` refuse it before building the models (the
    estimate comes from the meta device: this test would otherwise die in the allocator)."""
    from aip.bench import bench
    from aip.errors import AipError
    from aip.run import run
    from tests.conftest import one_line

    huge = load(tiny_recipe, ["student.kwargs.width=100000000"])
    memory = {c.name: c for c in preflight(huge, device="cpu")}["memory"]
    assert memory.state == "missing", memory.detail
    for fragment in ("student 'cnn'", "parameters", "PiB", "of memory on cpu", "lower student.kwargs",
                     "width=100000000"):
        assert fragment in memory.detail, memory.detail
    with pytest.raises(AipError) as e:
        run(huge, out=tmp_path / "run", device=torch.device("cpu"))
    one_line(e, "student.kwargs", "of memory on cpu")
    assert not (tmp_path / "run").exists()  # nothing left behind
    with pytest.raises(AipError) as e:
        bench(load(tiny_recipe), device=torch.device("cpu"), steps=1, warmup=0, num_classes=10**9)
    one_line(e, "the class count (1,000,000,000, from --num-classes)")
    teacher = {c.name: c for c in preflight(load(tiny_recipe, ["teacher.kwargs.width=10000000"]), device="cpu")}
    assert "teacher 'cnn'" in teacher["memory"].detail and "lower teacher.kwargs" in teacher["memory"].detail


def test_memory_line_names_the_batch_when_activations_are_too_large(tiny_recipe, monkeypatch):
    """Weights that fit with one batch's activations that do not: the line says to lower train.batch_size (or
    teacher.fit.batch_size, when training the teacher is the larger phase); the limit is fixed here, so the
    test does not depend on this machine's memory."""
    from aip import footprint

    monkeypatch.setattr(footprint, "memory_limit", lambda device: 2**30)  # 1 GiB
    assert states(preflight(load(tiny_recipe), device="cpu"))["memory"] == "ready"
    big = load(tiny_recipe, ["train.batch_size=200000", "train.samples_per_epoch=200000"])
    memory = {c.name: c for c in preflight(big, device="cpu")}["memory"]
    assert memory.state == "missing" and "lower train.batch_size" in memory.detail, memory.detail
    assert "1.0 GiB of memory on cpu" in memory.detail
    teacher = {c.name: c for c in preflight(load(tiny_recipe, ["teacher.fit.batch_size=200000"]), device="cpu")}
    assert "lower teacher.fit.batch_size" in teacher["memory"].detail, teacher["memory"].detail


def test_builders_make_no_memory_on_the_meta_device():
    """The estimate builds torchvision and timm models under torch.device('meta'): their parameters are meta
    tensors (no builder allocates eagerly), so a huge width costs nothing to estimate."""
    from aip import footprint

    r = load(ROOT / "recipes" / "imagenet.toml", ["student.arch='timm:resnet18'"])
    found = footprint.estimate(r, modality=load_modality("image"), num_classes=1000, view_shape=(3, 224, 224))
    assert found.student.params == 11_689_512 and found.teacher.params == 11_689_512  # timm's and torchvision's
    assert found.student.activations and found.student.activations > found.student.params


def test_aip_teacher_and_aip_eval_refuse_a_model_too_large_before_building_it(tiny_recipe, tmp_path):
    """Found by a second hostile round: `aip teacher` and `aip eval` built a width-10**8 model and died in the
    allocator with a traceback; each now counts only what it builds (the teacher with its training state; the
    student's weights alone, for an evaluation)."""
    from aip.errors import AipError
    from aip.run import evaluate_checkpoint, train_teacher
    from tests.conftest import one_line

    with pytest.raises(AipError) as e:
        train_teacher(load(tiny_recipe, ["teacher.kwargs.width=100000000"]), device=torch.device("cpu"))
    one_line(e, "teacher 'cnn'", "to train the teacher", "lower teacher.kwargs")
    (tmp_path / "run").mkdir()
    with pytest.raises(AipError) as e:
        evaluate_checkpoint(load(tiny_recipe, ["student.kwargs.width=100000000"]), tmp_path / "run" / "best.pt",
                            device=torch.device("cpu"))
    one_line(e, "student 'cnn'", "to load the student", "lower student.kwargs")
    # a huge student does not stop `aip teacher`, which never builds it
    from aip import footprint
    from aip.parts import Parts

    parts = Parts(load(tiny_recipe, ["student.kwargs.width=100000000"]), device=torch.device("cpu"))
    assert footprint.check_parts(parts, phases=("teacher",)).teacher.params < 10**6
