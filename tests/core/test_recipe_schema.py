"""Recipe validation: unknown keys, wrong types and impossible values fail with the key's name."""

from pathlib import Path

import pytest

from aip import recipe as R
from aip.errors import AipError, RecipeError
from tests.conftest import one_line

BASE = """
modality = "image"
[source]
uri = "skimage:camera"
size = 28
channels = 1
[teacher]
kind = "train"
arch = "cnn"
[student]
arch = "cnn"
[eval]
dataset = "fashion-mnist"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.toml"
    p.write_text(text)
    return p


def test_minimal_recipe_fills_defaults(tmp_path):
    r = R.load(write(tmp_path, BASE))
    assert r.name == "r" and r.loss.temperature == 8.0 and r.train.optimizer == "adamw"
    assert r.source.scale == (0.002, 1.0)
    assert r.train.total_steps == r.train.epochs * -(-r.train.samples_per_epoch // r.train.batch_size)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[train]\nepoch = 3", r"unknown recipe key train\.epoch \(did you mean train\.epochs\?\)"),
        ("[train]\nepochs = 'ten'", r"train\.epochs: expected an integer, got 'ten'"),
        ("[train]\nepochs = 0", r"train\.epochs: must be at least 1"),
        ("[train]\noptimizer = 'lion'", r"train\.optimizer: 'lion' is not allowed; choose one of 'adamw', 'adam'"),
        ("[train]\nbatch_size = true", r"train\.batch_size: expected an integer, got True"),
        ("[loss]\ntemperature = -1", r"loss\.temperature: must be positive"),
        ("[loss]\ntemperature = inf", r"loss\.temperature: must be a finite number, got inf"),
        ("[train]\nlr = nan", r"train\.lr: must be a finite number, got nan"),
        ("[train]\nlr = 1e400", r"train\.lr: must be a finite number, got inf"),
        ("[augment]\ncrop_scale = [0.5, -inf]", r"augment\.crop_scale\[1\]: must be a finite number"),
        ("[augment]\nhflip = 2.0", r"augment\.hflip: is a probability"),
        ("[augment]\ncrop_scale = [0.5]", r"augment\.crop_scale: expected a list of 2 values"),
        ("[train]\nschedule = 'step'", r"train\.milestones: train\.schedule = 'step' needs at least one milestone"),
    ],
)
def test_bad_values_name_the_key(tmp_path, extra, message):
    with pytest.raises(RecipeError, match=message):
        R.load(write(tmp_path, BASE + extra))


def test_source_keys_are_checked_by_the_modality(tmp_path):
    with pytest.raises(RecipeError, match=r"source\.channels: 2 is not allowed; choose one of 1, 3"):
        R.load(write(tmp_path, BASE.replace("channels = 1", "channels = 2")))
    with pytest.raises(RecipeError, match=r"unknown recipe key source\.sise \(did you mean source\.size\?\)"):
        R.load(write(tmp_path, BASE.replace("size = 28", "sise = 28")))


def test_teacher_kind_needs_its_fields(tmp_path):
    text = BASE.replace('kind = "train"\narch = "cnn"', 'kind = "hub"')
    with pytest.raises(RecipeError, match="hub_repo"):
        R.load(write(tmp_path, text))
    text = BASE.replace('kind = "train"', 'kind = "checkpoint"')
    with pytest.raises(RecipeError, match=r"teacher\.checkpoint: is required"):
        R.load(write(tmp_path, text))


def test_unknown_top_level_key(tmp_path):
    with pytest.raises(RecipeError, match=r"unknown recipe key 'colour'; top-level keys"):
        R.load(write(tmp_path, "colour = 1\n" + BASE))


def test_missing_section_modality_and_file(tmp_path):
    with pytest.raises(RecipeError, match=r"recipe section \[student\] is missing"):
        R.load(write(tmp_path, BASE.replace('[student]\narch = "cnn"\n', "")))
    with pytest.raises(RecipeError, match="modality is required"):
        R.load(write(tmp_path, BASE.replace('modality = "image"', "")))
    with pytest.raises(AipError, match=r"modality 'holograms' is not installed; installed modalities: .*image"):
        R.load(write(tmp_path, BASE.replace('"image"', '"holograms"')))
    with pytest.raises(RecipeError, match="does not exist"):
        R.load(tmp_path / "nope.toml")
    with pytest.raises(RecipeError, match="not valid TOML"):
        R.load(write(tmp_path, "modality = "))
    with pytest.raises(RecipeError, match="is a folder; give a .toml file in it"):
        R.load(tmp_path)


def test_a_byte_order_mark_is_accepted(tmp_path):
    """Some editors start UTF-8 files with a byte-order mark, which tomllib alone rejects at line 1, column 1."""
    plain = R.load(write(tmp_path, BASE))
    (tmp_path / "bom").mkdir()
    (tmp_path / "bom" / "r.toml").write_bytes(b"\xef\xbb\xbf" + BASE.encode())  # same name: the run is named after it
    assert R.load(tmp_path / "bom" / "r.toml").to_dict() == plain.to_dict()


def test_unknown_dataset_lists_known_ones(tmp_path):
    with pytest.raises(AipError, match=r"unknown dataset 'mnist'.*known: .*fashion-mnist"):
        R.load(write(tmp_path, BASE.replace('"fashion-mnist"', '"mnist"')))


def test_overrides_are_typed_and_validated(tmp_path):
    p = write(tmp_path, BASE)
    r = R.load(p, ["train.epochs=3", "source.uri=synthetic:noise", "train.milestones=[1, 2]", "teacher.fit.epochs=2"])
    assert r.train.epochs == 3 and r.source.uri == "synthetic:noise"
    assert r.train.milestones == [1.0, 2.0] and r.teacher.fit.epochs == 2
    with pytest.raises(RecipeError, match=r"train\.epochs: expected an integer"):
        R.load(p, ["train.epochs=three"])
    with pytest.raises(RecipeError, match="must look like section.key=value"):
        R.load(p, ["train.epochs"])


def test_resolved_recipe_round_trips_through_toml(tmp_path):
    r = R.load(write(tmp_path, BASE), ["loss.t2_scale=true"])
    again = R.load(write(tmp_path, r.to_toml()))
    assert again.to_dict() == {**r.to_dict(), "name": r.name}
    assert again.fingerprint() == r.fingerprint()


@pytest.mark.parametrize(("modality", "override", "message"), [
    ("image", "source.vflip=1.5", "recipe key source.vflip: is a probability in [0, 1]"),
    ("image", "augment.cutmix_p=-0.1", "recipe key augment.cutmix_p: is a probability in [0, 1]"),
    ("image", "augment.cutmix=-1", "recipe key augment.cutmix: is the Beta parameter, >= 0 (0 disables CutMix)"),
    ("video", "source.occlusion_p=2", "recipe key source.occlusion_p: is a probability in [0, 1] (0 = off)"),
    ("video", "augment.cutmix=-1", "recipe key augment.cutmix: is the Beta parameter, >= 0 (0 disables CutMix)"),
    ("audio", "augment.noise_p=1.01", "recipe key augment.noise_p: is a probability in [0, 1]"),
    ("audio", "augment.mixup=-0.5", "recipe key augment.mixup: is the Beta parameter, >= 0 (0 disables mixup)"),
])
def test_probabilities_and_beta_parameters_are_checked_alike_in_every_modality(modality, override, message):
    """One check each (aip.schema.check_probability, check_beta), the same words in every modality."""
    from aip.registry import load_modality

    data = R.apply_overrides(load_modality(modality).example(), [override])
    with pytest.raises(RecipeError) as e:
        R.from_dict(data)
    assert str(e.value) == message


def test_probability_bounds_are_inclusive():
    from aip.schema import check_beta, check_probability

    for p in (0, 0.5, 1):
        check_probability(p, "k")
    check_beta(0.0, "k")
    for p in (-1e-9, 1 + 1e-9, float("nan")):
        with pytest.raises(RecipeError, match="recipe key k: is a probability in"):
            check_probability(p, "k")


DEEP = 3000  # far past Python's recursion limit: the parser itself would raise RecursionError


@pytest.mark.parametrize("text", [
    "[student.kwargs]\nx = " + "[" * DEEP + "]" * DEEP,  # nested arrays: the TOML parser recurses
    "[student.kwargs]\nx = " + "{a=" * DEEP + "1" + "}" * DEEP,  # nested inline tables
    "[teacher.kwargs." + ".".join(["a"] * DEEP) + "]\nx = 1",  # a deep table header: parsed, then recursed over
    "[teacher.kwargs]\nx = " + "[" * 31 + "]" * 31,  # 33 levels: just past the bound
])
def test_deeply_nested_recipe_file_is_one_line(tmp_path, text):
    with pytest.raises(RecipeError) as e:
        R.load(write(tmp_path, BASE + text))
    one_line(e, "r.toml nests tables or arrays more than 32 levels deep", "flatten it")


@pytest.mark.parametrize("value", ["[" * DEEP + "]" * DEEP, "{a=" * DEEP + "1" + "}" * DEEP, "[" * 32 + "]" * 32])
def test_deeply_nested_override_is_one_line(tmp_path, value):
    with pytest.raises(RecipeError) as e:
        R.load(write(tmp_path, BASE), [f"train.milestones={value}"])
    msg = one_line(e, "override train.milestones=... nests tables or arrays more than 32 levels deep", "flatten it")
    assert len(msg) < 300  # the value is not echoed


def test_nesting_up_to_the_bound_is_read(tmp_path):
    """30 arrays under [teacher.kwargs] (32 levels) pass the bound; the sweeps' 4 levels are far inside it."""
    r = R.load(write(tmp_path, BASE + "[teacher.kwargs]\nx = " + "[" * 30 + "]" * 30))
    assert r.teacher.kwargs["x"] == R.read_toml(write(tmp_path, "x = " + "[" * 30 + "]" * 30))["x"]
    assert R.parse_override("train.milestones=" + "[" * 31 + "]" * 31)[0] == ["train", "milestones"]


@pytest.mark.parametrize("form", ["file", "set"])
def test_aip_check_refuses_deep_nesting_with_exit_2(tmp_path, form, monkeypatch, capsys):
    """Through the CLI (in this process): one line, exit 2, no traceback, for both forms of the issue."""
    import sys

    from aip import cli

    deep = "[" * DEEP + "]" * DEEP
    if form == "file":
        args = ["check", str(write(tmp_path, BASE + f"[student.kwargs]\nx = {deep}")), "--schema-only"]
    else:
        args = ["check", str(write(tmp_path, BASE)), "--schema-only", "--set", f"train.milestones={deep}"]
    monkeypatch.setattr(sys, "argv", ["aip", *args])
    with pytest.raises(SystemExit) as e:
        cli.main()
    err = capsys.readouterr().err
    assert e.value.code == 2, err[-2000:]
    assert err.count("\n") == 1 and "more than 32 levels deep" in err, err[-2000:]
    assert "Traceback" not in err and "RecursionError" not in err
