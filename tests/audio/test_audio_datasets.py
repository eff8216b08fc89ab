"""Audio datasets: Speech Commands' layout and lists, the 12- and 35-class protocols, bad clips, folders."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from aip.errors import AipError
from modalities.audio import datasets as D
from modalities.audio.espeak import PROSE
from tests.conftest import SPEAKERS, SPEECH_RATE, write_speechcommands

RATE = SPEECH_RATE


@pytest.fixture
def sc_root(tmp_path: Path) -> Path:
    D.index_speechcommands.cache_clear()
    return write_speechcommands(tmp_path, D.KEYWORDS + ("cat", "dog", "marvin"))


def load(root: Path, name: str = "speechcommands", split: str = "test", train: bool = False):
    return D.load(name, root=root, split=split, train=train, download=False, rate=RATE, samples=RATE)


def test_twelve_class_protocol_is_balanced(sc_root: Path):
    test = load(sc_root)
    assert test.num_classes == 12 and test.classes[-2:] == [D.UNKNOWN, D.SILENCE]
    labels = [test.dataset[i][1] for i in range(len(test.dataset))]
    counts = np.bincount(labels, minlength=12)
    assert counts.tolist() == [2] * 12  # one test speaker x 2 clips; unknown subsampled, silence matched
    x, _ = test.dataset[0]
    assert x.shape == (1, RATE)
    train = load(sc_root, split="train", train=True)
    assert np.bincount([y for _, y in (train.dataset[i] for i in range(len(train.dataset)))]).tolist() == [8] * 12


def test_short_clips_are_padded_and_lists_split_by_speaker(sc_root: Path):
    test = load(sc_root)
    files = test.dataset.files
    assert all(f.name.startswith(SPEAKERS[5]) for f in files)
    short = next(i for i, f in enumerate(files) if f.name.endswith("_1.wav"))
    x, _ = test.dataset[short]
    assert x[0, :RATE // 4 - 1].abs().max() == 0 and x[0, RATE // 2].abs() > 0  # centred, zero-padded
    silence = test.dataset[len(files)]
    assert silence[1] == 11 and silence[0].shape == (1, RATE)


def test_thirty_five_class_protocol_uses_every_word(sc_root: Path):
    data = load(sc_root, "speechcommands35")
    assert data.num_classes == 13 and "cat" in data.classes and D.SILENCE not in data.classes
    assert len(data.dataset) == 13 * 2


def test_bad_clips_are_counted_and_skipped(sc_root: Path, capsys: pytest.CaptureFixture):
    folder = sc_root / "SpeechCommands" / "speech_commands_v0.02"
    sf.write(str(folder / "yes" / f"{SPEAKERS[5]}_nohash_0.wav"), np.zeros(8000, np.float32), 8000)
    (folder / "no" / f"{SPEAKERS[5]}_nohash_0.wav").write_bytes(b"garbage")
    data = load(sc_root)
    assert re.search(r"warning: skipped 1 of \d+ clips .*\(1 unreadable; first: .*00000005_nohash_0.wav",
                     capsys.readouterr().err)
    assert len(data.dataset) == 12 * 2 - 1  # the 8 kHz clip is resampled


def test_missing_or_wrong_dataset_is_one_line(tmp_path: Path):
    with pytest.raises(AipError, match="Speech Commands v0.02 is not in"):
        load(tmp_path)
    with pytest.raises(AipError, match=r"unknown audio dataset 'speechcommand' \(did you mean 'speechcommands'\?\); "
                                       r"known: .*speechcommands"):
        load(tmp_path, "speechcommand")
    root = write_speechcommands(tmp_path / "few", ("yes", "no"))
    with pytest.raises(AipError, match="no clips of the keywords up, down"):
        load(root)


def test_every_clip_of_a_split_bad_is_an_error(tmp_path: Path):
    root = tmp_path / "af"
    for split in ("train", "test"):
        (root / split / "a").mkdir(parents=True)
        (root / split / "a" / "x.wav").write_bytes(b"RIFF, but no more")
        sf.write(str(root / split / "a" / "y.wav"), np.zeros(0, np.float32), 8000)
    with pytest.raises(AipError, match=r"no usable clip .*\(1 unreadable, 1 empty\); clips must be non-empty"):
        D.load("audiofolder", root=root, split="test", train=False, download=False, rate=RATE, samples=RATE)


def test_clips_at_other_rates_are_resampled(tmp_path: Path, capsys):
    """Recordings are rarely at the recipe's rate: clips at 44.1 and 8 kHz are read at 16 kHz, whole or one
    stretch at a time, with the same samples as resampling the whole file."""
    from modalities.audio.decode import resample

    root = tmp_path / "af"
    t44, t8 = np.arange(2 * 44_100) / 44_100, np.arange(2_000) / 8_000
    clips = {"a": (0.3 * np.sin(2 * np.pi * 440 * t44), 44_100), "b": (0.3 * np.sin(2 * np.pi * 300 * t8), 8_000)}
    for split in ("train", "test"):
        for c, (wave, rate) in clips.items():
            (root / split / c).mkdir(parents=True)
            sf.write(str(root / split / c / "0.wav"), wave.astype(np.float32), rate, subtype="FLOAT")
    test = D.load("audiofolder", root=root, split="test", train=False, download=False, rate=RATE, samples=RATE)
    assert "warning" not in capsys.readouterr().err and len(test.dataset) == 2
    whole = resample(torch.from_numpy(clips["a"][0].astype(np.float32)), 44_100, RATE)
    assert whole.numel() == 2 * RATE
    x, y = test.dataset[0]
    assert y == 0 and x.shape == (1, RATE)
    torch.testing.assert_close(x[0], whole[RATE // 2: RATE // 2 + RATE], atol=1e-4, rtol=0)  # the centred second
    x, y = test.dataset[1]  # 0.25 s at 8 kHz: 4,000 samples at 16 kHz, zero-padded around
    assert y == 1 and x.shape == (1, RATE) and int((x.abs() > 0).sum()) in range(3_900, 4_001)
    stretch = test.dataset._read(0, 12_345, 1_000)  # one stretch alone, read from the file's middle
    torch.testing.assert_close(stretch, whole[12_345: 13_345], atol=1e-4, rtol=0)


def test_audiofolder(sc_root: Path, tmp_path: Path):
    folder = sc_root / "SpeechCommands" / "speech_commands_v0.02"
    root = tmp_path / "af"
    for split in ("train", "val"):
        for w in ("yes", "no"):
            shutil.copytree(folder / w, root / split / w)
    data = D.load("audiofolder", root=root, split="test", train=True, download=False, rate=RATE, samples=RATE)
    assert data.classes == ["no", "yes"] and len(data.dataset) == 24
    assert data.dataset[0][0].shape == (1, RATE)


def _tone_folder(root: Path, layout: dict[str, list[str]]) -> Path:
    """An audiofolder whose every clip of class ``c`` is a tone of 200 * (1 + index of ``c`` in train) Hz."""
    train = sorted(layout["train"])
    for split, classes in layout.items():
        for c in classes:
            (root / split / c).mkdir(parents=True)
            t = np.arange(RATE) / RATE
            sf.write(str(root / split / c / "0.wav"), 0.3 * np.sin(2 * np.pi * 200 * (1 + train.index(c)) * t), RATE)
    return root


def test_audiofolder_test_labels_follow_the_training_classes(tmp_path: Path):
    """A class missing from test/ must not shift the labels of the classes after it."""
    root = _tone_folder(tmp_path / "af", {"train": ["a", "b", "c"], "test": ["a", "c"]})
    test = D.load("audiofolder", root=root, split="test", train=False, download=False, rate=RATE, samples=RATE)
    assert test.classes == ["a", "b", "c"] and test.num_classes == 3
    assert [test.dataset[i][1] for i in range(len(test.dataset))] == [0, 2]
    (root / "test" / "d").mkdir()
    with pytest.raises(AipError, match=r"audiofolder: class folders d in .*test are not in .*train"):
        D.load("audiofolder", root=root, split="test", train=False, download=False, rate=RATE, samples=RATE)


def test_audiofolder_skips_hidden_entries_and_names_empty_classes(tmp_path: Path, capsys):
    root = _tone_folder(tmp_path / "af", {"train": ["a", "b"], "test": ["a", "b"]})
    for split in ("train", "test"):
        (root / split / ".ipynb_checkpoints").mkdir()
        (root / split / "a" / "._0.wav").write_bytes(b"\0\5\26\7 AppleDouble resource fork")
    for split in ("train", "test"):
        data = D.load("audiofolder", root=root, split=split, train=False, download=False, rate=RATE, samples=RATE)
        assert data.classes == ["a", "b"] and len(data.dataset) == 2
    assert "warning" not in capsys.readouterr().err
    (root / "train" / "emu").mkdir()
    with pytest.raises(AipError, match=r"audiofolder: class folders emu in .*train hold no audio clips .*; add some"):
        D.load("audiofolder", root=root, split="train", train=True, download=False, rate=RATE, samples=RATE)


def test_prose_contains_none_of_the_words():
    words = set(re.findall(r"[a-z]+", PROSE.lower()))
    assert not words & set(D.KEYWORDS + D.UNKNOWN_WORDS)
    assert len(words) > 150


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_keyword_set_has_speechcommands_layout(tmp_path: Path):
    from modalities.audio.keywords import build_keyword_set

    folder = build_keyword_set(tmp_path, n_voices=8, reps=1, words=D.KEYWORDS + ("cat",))
    assert build_keyword_set(tmp_path, n_voices=8, reps=1, words=D.KEYWORDS + ("cat",)) == folder  # cached
    assert (folder / "testing_list.txt").read_text().count("yes/") == 2  # voices 3 and 7 are test voices
    assert len(list((folder / D.NOISE_DIR).glob("*.wav"))) == 4
    info = sf.info(str(next((folder / "stop").glob("*.wav"))))
    assert info.samplerate == RATE and info.frames == RATE
    D.index_speechcommands.cache_clear()
    test = D.load("speechcommands", root=folder, split="test", train=False, download=False, rate=RATE,
                  samples=RATE)
    assert len(test.dataset) == 12 * 2


def test_dataset_train_restricted_to_n_clips(sc_root: Path):
    """``source.train_items = N`` keeps N training clips, the same N for the same ``source.seed``, a
    different N for another; other sources refuse it at load."""
    import torch

    from aip import recipe as recipe_mod
    from aip.errors import RecipeError
    from aip.registry import load_modality
    from tests.conftest import ROOT

    base = ["eval.dataset=speechcommands", f"eval.root={sc_root.as_posix()}", "eval.download=false",
            "source.uri=dataset:train"]
    audio = load_modality("audio")

    def sampler(*extra: str):
        return audio.sampler(recipe_mod.load(ROOT / "recipes" / "speechcommands.toml", [*base, *extra]),
                             device=torch.device("cpu"))

    everything = sampler()
    three = sampler("source.train_items=3", "source.seed=1")
    assert len(three.data) == 3 < len(everything.data)
    clips = torch.stack([three.data[i][0] for i in range(3)])
    assert torch.equal(clips, torch.stack([sampler("source.train_items=3", "source.seed=1").data[i][0]
                                           for i in range(3)]))
    other = torch.stack([sampler("source.train_items=3", "source.seed=2").data[i][0] for i in range(3)])
    assert not torch.equal(clips, other)
    torch.manual_seed(0)
    for window in three.sample(12):  # every window is one of the three clips
        assert ((clips - window).abs().flatten(1).amax(1) < 1e-6).any()
    with pytest.raises(AipError, match="has only"):
        sampler(f"source.train_items={len(everything.data) + 1}")
    with pytest.raises(RecipeError, match="train_items"):
        recipe_mod.load(ROOT / "recipes" / "speechcommands.toml", [*base[:3], "source.train_items=3"])


@pytest.mark.parametrize("native", [8_000, 22_050, 48_000, 192_000])
def test_a_stretch_read_at_another_rate_matches_the_whole_file_resampled(tmp_path: Path, native: int):
    from modalities.audio.decode import resample

    rng = np.random.default_rng(native)
    wave = (0.2 * rng.standard_normal(3 * native)).astype(np.float32)
    sf.write(str(tmp_path / "x.wav"), wave, native, subtype="FLOAT")
    ds = D.ClipDataset([tmp_path / "x.wav"], [0], rate=RATE, samples=RATE, train=False, noise=[], silence=0,
                       silence_label=-1, seed=0)
    whole = resample(torch.from_numpy(wave), native, RATE)
    torch.testing.assert_close(ds._read(0), whole)
    for start, count in ((0, 1_000), (7, 500), (20_011, 3_000), (whole.numel() - 800, 800)):
        torch.testing.assert_close(ds._read(0, start, count), whole[start: start + count], atol=2e-4, rtol=0)
