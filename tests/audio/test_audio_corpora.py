"""MUSAN, Voxforge and LibriSpeech in their distributed layouts (tiny files written with soundfile), their
deterministic hash splits, unreadable files, and the multi-window test items of long recordings."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from aip.errors import AipError
from aip.evaluate import evaluate, loader
from modalities.audio import corpora
from modalities.audio import datasets as D

RATE = 16_000
WINDOWS = 4


@pytest.fixture(autouse=True)
def fresh_index():
    D.index_recordings.cache_clear()


def tone(path: Path, seconds: float, freq: float, *, fmt: str = "WAV") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * RATE)) / RATE
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE, format=fmt,
             subtype="PCM_16")


def write_musan(root: Path) -> Path:
    """``musan/{speech,music,noise}/SUBSET/*.wav`` with the real subset names, plus the LICENSE/ANNOTATIONS files."""
    folder = root / "musan"
    subsets = {"speech": ("librivox", "us-gov"), "music": ("fma", "fma-western-art", "hd-classical", "jamendo", "rfm"),
               "noise": ("free-sound", "sound-bible")}
    for k, (cls, subs) in enumerate(subsets.items()):
        for sub in subs:
            for i in range(6):
                tone(folder / cls / sub / f"{cls}-{sub}-{i:04d}.wav", 0.5 + (i % 4), 200 + 300 * k)
            (folder / cls / sub / "LICENSE").write_text("license text\n")
        (folder / cls / "README").write_text("readme\n")
    return root


def write_voxforge(root: Path) -> Path:
    """``LANG/SPEAKER-DATE-ID/{wav/*.wav, etc/PROMPTS}`` for the six languages, 5 speakers x 2 archives each."""
    for k, lang in enumerate(corpora.VOXFORGE_LANGUAGES):
        for s in range(5):
            for a in range(2):
                archive = root / lang / f"speaker{s}{lang}-2008050{a}-x{a}{s}"
                for i in range(2):
                    tone(archive / "wav" / f"a{i:04d}.wav", 1.5 + i, 150 + 100 * k)
                (archive / "etc").mkdir()
                (archive / "etc" / "PROMPTS").write_text("a0000 SOME WORDS\n")
        for a in range(3):  # anonymous submissions: a speaker each
            tone(root / lang / f"anonymous-2009010{a}-an{a}" / "wav" / "b0001.wav", 2.0, 150 + 100 * k)
    return root


def write_librispeech(root: Path, speakers: int = 102) -> Path:
    """``LibriSpeech/train-clean-100/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac`` plus the transcripts."""
    folder = root / "LibriSpeech" / corpora.LIBRISPEECH_SUBSET
    for s in range(speakers):
        spk, chapter = str(19 + 7 * s), str(1000 + s)
        for u in range(3):
            tone(folder / spk / chapter / f"{spk}-{chapter}-{u:04d}.flac", 0.25 + u, 100 + 5 * s, fmt="FLAC")
        (folder / spk / chapter / f"{spk}-{chapter}.trans.txt").write_text("TEXT\n")
    return root


def load(name: str, root: Path, split: str = "test", *, train: bool = False, windows: int = WINDOWS):
    return D.load(name, root=root, split=split, train=train, download=False, rate=RATE, samples=RATE,
                  windows=windows)


def labels_of(data) -> list[int]:
    return list(data.dataset.labels)


def test_musan_layout_and_split(tmp_path: Path):
    root = write_musan(tmp_path)
    test, train = load("musan", root), load("musan", root, "train")
    assert test.classes == ["speech", "music", "noise"] and test.num_classes == 3
    files_test, files_train = set(test.dataset.files), set(train.dataset.files)
    assert not files_test & files_train and len(files_test | files_train) == 9 * 6  # LICENSE, README skipped
    assert 0 < len(files_test) < len(files_train) and set(labels_of(test)) == {0, 1, 2}
    for f, y in zip(test.dataset.files, labels_of(test)):
        assert f.parts[-3] == test.classes[y]
    assert load("musan", root / "musan").dataset.files == test.dataset.files  # the folder itself works too
    assert test.views == WINDOWS and train.views == 1
    x, y = test.dataset[0]
    assert x.shape == (WINDOWS, 1, RATE)
    xt, _ = train.dataset[0]
    assert xt.shape == (1, RATE)


def test_splits_are_a_hash_of_names_not_of_order(tmp_path: Path):
    root = write_musan(tmp_path)
    before = set(load("musan", root).dataset.files)
    tone(root / "musan" / "music" / "fma" / "music-fma-9999.wav", 1.0, 500)  # a new file moves no other file
    D.index_recordings.cache_clear()
    after = set(load("musan", root).dataset.files)
    assert before <= after and len(after - before) <= 1
    assert corpora.in_test("musan", "fma/music-fma-0001.wav") == corpora.in_test("musan", "fma/music-fma-0001.wav")
    share = np.mean([corpora.in_test("x", str(i)) for i in range(4000)])
    assert abs(share - corpora.TEST_SHARE) < 0.03


def test_voxforge_splits_by_speaker(tmp_path: Path):
    root = write_voxforge(tmp_path)
    test, train = load("voxforge", root), load("voxforge", root, "train")
    assert test.classes == ["de", "en", "es", "fr", "it", "ru"]
    speakers = {split: {(f.parts[-4], corpora.voxforge_speaker(f.parts[-3])) for f in d.dataset.files}
                for split, d in (("test", test), ("train", train))}
    assert speakers["test"] and not speakers["test"] & speakers["train"]  # no test speaker is heard in training
    assert len(test.dataset) + len(train.dataset) == 6 * (5 * 2 * 2 + 3)  # PROMPTS files skipped
    assert corpora.voxforge_speaker("ralfherzog-20070909-de11") == "ralfherzog"
    assert corpora.voxforge_speaker("anonymous-20090101-an0") == "anonymous-20090101-an0"
    for f, y in zip(test.dataset.files, labels_of(test)):
        assert f.parts[-4] == test.classes[y] and f.parent.name == "wav"


def test_voxforge_needs_all_six_languages(tmp_path: Path):
    root = write_voxforge(tmp_path)
    for lang in ("it", "ru"):
        for f in sorted((root / lang).rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        (root / lang).rmdir()
    with pytest.raises(AipError, match="lacks the language folders it, ru"):
        load("voxforge", root)


def test_librispeech_hundred_speakers(tmp_path: Path):
    root = write_librispeech(tmp_path)
    test, train = load("librispeech", root), load("librispeech", root, "train")
    assert test.num_classes == 100 and train.classes == test.classes
    assert test.classes[:3] == ["19", "26", "33"]  # numeric order of speaker IDs
    ids = {int(f.parts[-3]) for d in (test, train) for f in d.dataset.files}
    assert ids == {19 + 7 * s for s in range(100)}  # the two largest IDs are not used
    assert not set(test.dataset.files) & set(train.dataset.files)
    for f, y in zip(test.dataset.files, labels_of(test)):
        assert f.parts[-3] == test.classes[y] and f.suffix == ".flac"
    flac = next(i for i, f in enumerate(test.dataset.files) if sf.info(str(f)).frames < RATE)
    assert test.dataset[flac][0].shape == (WINDOWS, 1, RATE)
    assert load("librispeech", root / "LibriSpeech" / "train-clean-100").dataset.files == test.dataset.files


def test_librispeech_needs_a_hundred_speakers_and_the_folder(tmp_path: Path):
    with pytest.raises(AipError, match="LibriSpeech train-clean-100 is not in .*eval.download = true"):
        load("librispeech", tmp_path)
    with pytest.raises(AipError, match="has 20 speaker folders; the speaker task needs 100"):
        load("librispeech", write_librispeech(tmp_path / "few", speakers=20))


def test_missing_layouts_are_one_line_errors(tmp_path: Path):
    with pytest.raises(AipError, match=r"MUSAN is not in .*musan/\{speech,music,noise\}"):
        load("musan", tmp_path)
    with pytest.raises(AipError, match="Voxforge is not in .*LANG/SPEAKER-DATE-ID/wav"):
        load("voxforge", tmp_path)
    with pytest.raises(AipError, match="unknown split 'val'"):
        load("musan", tmp_path, "val")


def test_unreadable_files_are_counted_and_skipped(tmp_path: Path, capsys: pytest.CaptureFixture):
    root = write_musan(tmp_path)
    test_files = load("musan", root).dataset.files
    test_files[0].write_bytes(b"not audio")
    sf.write(str(test_files[1]), np.zeros(0, np.float32), 8000)
    sf.write(str(test_files[2]), np.zeros(800, np.float32), 8000)  # another rate: resampled, kept
    D.index_recordings.cache_clear()
    capsys.readouterr()
    data = load("musan", root)
    assert re.search(r"warning: skipped 2 of \d+ clips of musan test .*1 unreadable, 1 empty",
                     capsys.readouterr().err)
    assert len(data.dataset) == len(test_files) - 2


def test_windows_cover_long_files_and_loop_short_ones():
    L = 100
    wave = torch.arange(1000, dtype=torch.float32)
    x = D.split_windows(wave, L, 4)
    assert x.shape == (4, 1, L)
    starts = x[:, 0, 0].long().tolist()
    assert starts == D.window_starts(1000, L, 4) == [75, 325, 575, 825]  # centred in four equal parts
    assert all(b - a >= L for a, b in zip(starts, starts[1:]))  # non-overlapping
    assert torch.equal(x[2, 0], wave[575:675])
    short = torch.arange(250, dtype=torch.float32)
    y = D.split_windows(short, L, 4)  # 2.5 windows long: looped to 4
    assert D.window_starts(250, L, 4) is None
    assert torch.equal(y.flatten(), torch.cat([short, short])[:400])
    assert D.split_windows(torch.ones(30), L, 2).abs().min() == 1  # never zero-padded


def test_test_items_read_the_windows_of_the_file(tmp_path: Path):
    """A test item reads its windows from the file alone and matches split_windows on the whole file."""
    path = tmp_path / "test" / "a" / "long.wav"
    path.parent.mkdir(parents=True)
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, RATE * 7).astype(np.float32)
    sf.write(str(path), wave, RATE, subtype="FLOAT")
    (tmp_path / "test" / "b").mkdir()  # a second class: a one-class dataset is refused
    sf.write(str(tmp_path / "test" / "b" / "short.wav"), wave[:RATE], RATE, subtype="FLOAT")
    data = D.load("audiofolder", root=tmp_path, split="test", train=False, download=False, rate=RATE,
                  samples=RATE, windows=5)
    x, y = data.dataset[0]
    assert data.views == 5 and y == 0
    assert torch.equal(x, D.split_windows(torch.from_numpy(wave), RATE, 5))


def test_windows_average_through_the_evaluator(tmp_path: Path):
    """Multi-window items go through aip.evaluate's softmax averaging: a model that hears the tone's pitch."""
    root = write_musan(tmp_path)
    test = load("musan", root)

    class Pitch(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, L): zero crossings per second -> class
            positive = x[:, 0] >= 0
            crossings = (positive[:, 1:] != positive[:, :-1]).float().sum(-1) / 2
            centres = torch.tensor([200.0, 500.0, 800.0])
            return -(crossings[:, None] - centres).abs()

    acc = evaluate(Pitch(), loader(test, batch_size=8), device=torch.device("cpu"), views=test.views)
    assert acc["top1"] == 100.0 and acc["n"] == len(test.dataset)


def test_registry_lists_every_dataset():
    assert D.DATASETS.names() == sorted(["audiofolder", "librispeech", "musan", "sound-types", "speechcommands",
                                         "speechcommands35", "spoken-keywords", "spoken-languages", "voxforge"])
    with pytest.raises(AipError, match=r"unknown audio dataset 'musn' \(did you mean 'musan'\?\)"):
        D.load("musn", root=Path("."), split="test", train=False, download=False, rate=RATE, samples=RATE)


def test_training_split_gives_random_windows_of_long_files(tmp_path: Path):
    root = write_musan(tmp_path)
    train = load("musan", root, "train")
    long = next(i for i, n in enumerate(train.dataset.frames) if n >= 3 * RATE)
    torch.manual_seed(0)
    a, b = train.dataset[long][0], train.dataset[long][0]
    assert a.shape == b.shape == (1, RATE) and not torch.equal(a, b)


@pytest.mark.parametrize("name,numbers", [("musan", ("98.76", "96.78", "89.85", "96.28")),
                                          ("voxforge", ("91.13", "89.04", "72.85", "78.47")),
                                          ("librispeech", ("99.89", "99.54", "78.67", "84.12"))])
def test_recipes_state_the_paper_and_the_protocol(name: str, numbers: tuple[str, ...]):
    from aip import recipe as recipe_mod
    from tests.conftest import ROOT

    path = ROOT / "recipes" / f"{name}.toml"
    r = recipe_mod.load(path)
    assert r.modality == "audio" and r.eval.dataset == name and r.source.test_windows == 10
    assert (r.source.rate, r.source.window) == (16_000, 1.0)
    header = path.read_text().split("\nmodality")[0]
    assert all(f"{n} %" in header for n in numbers), numbers
    assert "UNCONFIRMED" in header


def test_the_modality_passes_the_recipes_test_windows(tmp_path: Path):
    """``source.test_windows`` reaches the test split through AudioModality.data; dataset:train hears windows."""
    from aip import recipe as recipe_mod
    from modalities.audio import AudioModality
    from tests.conftest import ROOT

    root = write_musan(tmp_path)
    r = recipe_mod.load(ROOT / "recipes" / "musan.toml", [f"eval.root={root}", "source.test_windows=3",
                                                          "source.uri=dataset:train"])
    modality = AudioModality()
    test = modality.data(r, split="test", train=False)
    assert test.views == 3 and test.dataset[0][0].shape == (3, 1, RATE)
    assert modality.data(r, split="test", train=True).views == 1
    sampler = modality.sampler(r, device=torch.device("cpu"))
    assert sampler.sample(4).shape == (4, 1, RATE)
