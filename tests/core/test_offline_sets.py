"""The offline demo sets built on first use: ``motion`` (video), ``spoken-languages`` and ``sound-types`` (audio),
and the ``espeak:radio`` source. Each is built small here, in its real layout, and read by the dataset loader
its recipe names."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from modalities.audio import corpora
from modalities.audio import datasets as audio_datasets
from modalities.video import datasets as video_datasets
from modalities.video.config import VideoSourceConfig
from modalities.video.motion import CLASSES, build_motion_set, moving_texture

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def _edges(frame: np.ndarray) -> float:
    """Mean absolute horizontal difference: large for fine texture, small once it is magnified."""
    return float(np.abs(np.diff(frame.astype(float), axis=1)).mean())


@pytest.mark.parametrize("motion", ["left", "right", "up", "down"])
def test_a_pan_shifts_the_frame_by_its_speed(motion):
    clip = moving_texture(np.random.default_rng(0), motion, frames=6, size=24, speed=3)
    dy, dx = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}[motion]
    a, b = clip[0].astype(int), clip[1].astype(int)
    # frame 1 is frame 0 moved by 3 px against the camera's motion: their overlaps are the same pixels
    if dx:
        same = a[:, 3:] if dx > 0 else a[:, :-3]
        then = b[:, :-3] if dx > 0 else b[:, 3:]
    else:
        same = a[3:] if dy > 0 else a[:-3]
        then = b[:-3] if dy > 0 else b[3:]
    assert np.array_equal(same, then)
    assert not np.array_equal(a, b)


def test_zooms_magnify_or_shrink_the_scene():
    zin = moving_texture(np.random.default_rng(1), "zoom-in", frames=8, size=32, speed=2)
    zout = moving_texture(np.random.default_rng(1), "zoom-out", frames=8, size=32, speed=2)
    assert zin.shape == zout.shape == (8, 32, 32, 3) and zin.dtype == np.uint8
    assert _edges(zin[-1]) < 0.8 * _edges(zin[0])  # zooming in: the blocks grow, fewer edges per pixel
    assert _edges(zout[-1]) > 1.25 * _edges(zout[0])
    assert np.array_equal(zin[::-1], zout)  # the same scene, the same windows, in the other order
    with pytest.raises(ValueError, match="unknown motion"):
        moving_texture(np.random.default_rng(0), "spin")


def test_motion_set_is_a_videofolder_built_once_and_read_by_its_dataset_name(tmp_path: Path):
    folder = build_motion_set(tmp_path, train_per_class=2, test_per_class=1)
    assert sorted(p.name for p in (folder / "train").iterdir()) == sorted(CLASSES)
    assert len(list((folder / "train").rglob("*.mp4"))) == 12 and len(list((folder / "val").rglob("*.mp4"))) == 6
    stamp = (folder / "val" / "left" / "000.mp4").stat().st_mtime_ns
    assert build_motion_set(tmp_path, train_per_class=2, test_per_class=1) == folder  # cached, not rewritten
    assert (folder / "val" / "left" / "000.mp4").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no half-built folder left behind
    cfg = VideoSourceConfig(frames=4, size=32, data_fps=8.0, data_stride=1, test_clips=3, test_short_side=32)
    # the reader builds the set's default size under the root it is given; point it at the small one instead
    test = video_datasets.load("videofolder", root=folder, split="test", train=False, cfg=cfg, download=False)
    assert test.classes == sorted(CLASSES) and len(test.dataset) == 6 and test.views == 3
    clips, label = test.dataset[0]
    assert clips.shape == (3, 3, 4, 32, 32) and 0 <= label < 6


def test_motion_dataset_name_builds_the_set_under_the_root(tmp_path: Path, monkeypatch):
    from modalities.video import motion

    small = lambda root: build_motion_set(root, train_per_class=1, test_per_class=1)  # noqa: E731
    monkeypatch.setattr(motion, "build_motion_set", small)
    cfg = VideoSourceConfig(frames=4, size=32, data_fps=8.0, data_stride=1, test_clips=2, test_short_side=32)
    train = video_datasets.load("motion", root=tmp_path, split="train", train=True, cfg=cfg, download=False)
    assert len(train.dataset) == 6 and train.num_classes == 6
    assert next(tmp_path.iterdir()).name.startswith("motion-v")


@needs_espeak
def test_language_set_in_voxforge_layout_split_by_voice_with_unheard_words(tmp_path: Path):
    from modalities.audio import languages as L

    folder = L.build_language_set(tmp_path, utterances=1)
    assert L.build_language_set(tmp_path, utterances=1) == folder  # cached
    files = {s: corpora.voxforge(folder, s) for s in ("train", "test")}
    assert files["train"][2] == list(corpora.VOXFORGE_LANGUAGES)
    for split, per_language in (("train", 30), ("test", 6)):
        paths, labels, _ = files[split]
        assert np.bincount(labels).tolist() == [per_language] * 6, split
        assert all(p.parent.name == "wav" and p.suffix == ".wav" for p in paths)
    speakers = lambda split: {corpora.voxforge_speaker(p.parents[1].name) for p in files[split][0]}  # noqa: E731
    assert not speakers("train") & speakers("test")  # split by voice
    heard = {v for i in range(6) for v, test in L.speakers(i) if not test}
    held_out = {v for i in range(6) for v, test in L.speakers(i) if test}
    assert held_out == set(L.TEST_VARIANTS) and not heard & held_out  # test voices are new to every language
    for lang in L.WORDS:
        words = L.WORDS[lang].split()
        assert not set(words[0::2]) & set(words[1::2])
    wave, rate = sf.read(str(files["test"][0][0]))
    assert rate == 16_000 and wave.ndim == 1 and 1.0 < wave.size / rate < 12 and np.abs(wave).max() > 0.1
    test = audio_datasets.load("voxforge", root=folder, split="test", train=False, download=False, rate=16_000,
                               samples=16_000, windows=3)
    x, y = test.dataset[0]
    assert test.num_classes == 6 and x.shape == (3, 1, 16_000) and test.views == 3


def _peakiness(x: np.ndarray, rate: int = 16_000) -> float:
    """How far the strongest spectral line of a half-second frame stands above the median of its 40 neighbours
    (median over frames): thousands for notes, about 10-30 for noise, whose power spectrum is ragged but flat."""
    frames = x[: x.size // (rate // 2) * (rate // 2)].reshape(-1, rate // 2) * np.hanning(rate // 2)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-12
    local = np.median(np.lib.stride_tricks.sliding_window_view(np.pad(power, ((0, 0), (20, 20)), mode="edge"), 41,
                                                               axis=1), axis=-1)
    return float(np.median((power / local).max(axis=1)))


def test_music_is_tonal_noise_is_not():
    from modalities.audio import sounds as S

    rng = np.random.default_rng(0)
    for kind in S.MUSIC:
        m = S.music(kind, rng)
        assert m.shape == (int(S.SECONDS * S.RATE),) and np.abs(m).max() > 0.05
        assert _peakiness(m) > 1000, kind
    for kind in S.NOISES:
        n = S.noise(kind, rng)
        assert n.shape == (int(S.SECONDS * S.RATE),) and np.isfinite(n).all() and np.abs(n).max() > 0.05
        if kind == "machine":  # a motor and mains hum: its lines are 50 Hz and its harmonics
            spec = np.abs(np.fft.rfft(n))
            f = np.fft.rfftfreq(n.size, 1 / S.RATE)
            assert min(abs(f[spec.argmax()] - 50 * k) for k in range(1, 6)) < 1 or f[spec.argmax()] < 80
        else:
            assert _peakiness(n) < 100, kind
    with pytest.raises(ValueError, match="unknown noise"):
        S.noise("thunder", rng)


def test_a_plucked_string_sounds_at_its_pitch_and_dies_away():
    from modalities.audio import sounds as S

    x = S.pluck(57, 1.0, np.random.default_rng(0))  # A3, 220 Hz
    spec = np.abs(np.fft.rfft(x[: S.RATE // 2]))
    f = np.fft.rfftfreq(S.RATE // 2, 1 / S.RATE)
    assert abs(f[spec.argmax()] - 220) < 8
    rms = lambda a: float(np.sqrt((a**2).mean()))  # noqa: E731
    assert rms(x[-2000:]) < 0.5 * rms(x[:2000])


@needs_espeak
def test_sound_set_in_musan_layout_read_by_its_dataset_name(tmp_path: Path, monkeypatch):
    from modalities.audio import sounds as S

    folder = S.build_sound_set(tmp_path, per_subset=2, speech_files=6)
    assert S.build_sound_set(tmp_path, per_subset=2, speech_files=6) == folder
    musan = folder / "musan"
    assert sorted(p.name for p in (musan / "music").iterdir()) == sorted(S.MUSIC)
    assert {p.parent.name for p in (musan / "noise").rglob("*.wav")} == set(S.NOISES)
    counts = {c: len(list((musan / c).rglob("*.wav"))) for c in corpora.MUSAN_CLASSES}
    assert counts == {"speech": 6, "music": 6, "noise": 6}
    train = corpora.musan(folder, "train")
    test = corpora.musan(folder, "test")
    assert len(train[0]) + len(test[0]) == 18 and not set(train[0]) & set(test[0])
    monkeypatch.setattr(S, "build_sound_set", lambda root: folder)
    data = audio_datasets.load("sound-types", root=tmp_path, split="train", train=False, download=False,
                               rate=16_000, samples=16_000)
    assert data.classes == list(corpora.MUSAN_CLASSES) and len(data.dataset) == len(train[0])
    x, _ = data.dataset[0]
    assert x.shape == (1, 16_000) and torch.isfinite(x).all()


@needs_espeak
def test_radio_recording_holds_talk_jingles_and_street(tmp_path: Path, monkeypatch):
    from modalities.audio import sounds as S
    from modalities.audio.espeak import Voice

    monkeypatch.setenv("AIP_CACHE", str(tmp_path))
    monkeypatch.setattr(S, "PROSE", "The boat left. The gulls cried. The rain fell. The bell rang. The sun set.")
    monkeypatch.setattr(S, "PROSE_VOICES", (Voice("en-us+m3", 45, 165),))
    path = S.radio_recording()
    assert path.parent == tmp_path / "sources" and S.radio_recording() == path
    wave, rate = sf.read(str(path), dtype="float32")
    assert rate == 16_000 and 10 < wave.size / rate < 60  # a few seconds of talk and two jingles of 8-14 s
    from modalities.audio.config import AudioSourceConfig
    from modalities.audio.source import load_recording

    loaded = load_recording(AudioSourceConfig(uri="espeak:radio"))
    assert loaded.numel() == wave.size


def test_video_dataset_train_and_noise_sources_for_the_motion_recipe(tmp_path: Path):
    """The motion demo's comparison rows: ``dataset:train`` (random training clips, labels unused, cropped and
    flipped by the augmenter) and ``synthetic:noise`` (the camera over a noise image); other dataset sources fail
    in one line."""
    from aip import recipe as recipe_mod
    from aip.errors import AipError
    from aip.registry import load_modality
    from aip.sampling import DatasetSampler
    from tests.conftest import ROOT

    folder = build_motion_set(tmp_path, train_per_class=1, test_per_class=1)
    video = load_modality("video")
    base = ["eval.dataset=videofolder", f"eval.root={folder.as_posix()}"]
    r = recipe_mod.load(ROOT / "recipes" / "motion.toml", [*base, "source.uri=dataset:train"])
    video.validate(r)
    sampler = video.sampler(r, device=torch.device("cpu"))
    assert isinstance(sampler, DatasetSampler) and len(sampler.data) == 6
    torch.manual_seed(0)
    clips = sampler.sample(5)
    assert clips.shape == (5, 3, 4, 32, 32) and 0 <= clips.min() and clips.max() <= 1
    augmenter = video.augmenter(r, device=torch.device("cpu"))
    assert augmenter.geometry is not None and augmenter(clips).shape == clips.shape
    noise = recipe_mod.load(ROOT / "recipes" / "motion.toml", [*base, "source.uri=synthetic:noise"])
    video.validate(noise)
    assert video.augmenter(noise, device=torch.device("cpu")).geometry is None  # the sampler crops
    x = video.sampler(noise, device=torch.device("cpu")).sample(3)
    assert x.shape == (3, 3, 4, 32, 32) and x.std() > 0.02  # a fine noise image, seen from afar, averages out
    with pytest.raises(AipError, match="only dataset source is dataset:train"):
        video.validate(recipe_mod.load(ROOT / "recipes" / "motion.toml", [*base, "source.uri=dataset:test"]))


def test_a_rebuilt_set_of_the_same_size_gets_its_own_cached_teacher(tmp_path: Path):
    """The teacher cache key names the dataset's files when it lists them: a set rebuilt under a new version
    folder (same size, same shapes) must not reuse the teacher trained on the old one."""
    from aip import recipe as recipe_mod
    from aip.modality import LabelledData
    from aip.teacher import cache_key
    from tests.conftest import ROOT

    class Listed(torch.utils.data.Dataset):
        def __init__(self, files: list[Path]) -> None:
            self.files = files

        def __len__(self) -> int:
            return len(self.files)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            return torch.zeros(1, 16_000), 0

    r = recipe_mod.load(ROOT / "recipes" / "spoken-languages.toml")
    keys = [cache_key(r, LabelledData(dataset=Listed([tmp_path / v / "a.wav", tmp_path / v / "b.wav"]),
                                      num_classes=6, classes=list("abcdef"))) for v in ("set-v1", "set-v2", "set-v1")]
    assert keys[0] != keys[1] and keys[0] == keys[2]


def test_synthetic_set_builds_once_under_its_versioned_name(tmp_path: Path):
    """aip.cache.synthetic_set: root/NAME-vVERSION-HASH, written once; a failed build leaves no folder."""
    import hashlib

    from aip.cache import synthetic_set

    calls = []

    def write(part: Path) -> None:
        calls.append(part)
        (part / "done").write_text("x")

    def build(params: tuple) -> Path:
        return synthetic_set(tmp_path, "demo", version=3, params=params,
                             complete=lambda folder: (folder / "done").is_file(), write=write)

    folder = build((1, "a"))
    assert folder.name == f"demo-v3-{hashlib.sha256(repr((3, 1, 'a')).encode()).hexdigest()[:8]}"
    assert (folder / "done").is_file() and len(calls) == 1
    assert build((1, "a")) == folder and len(calls) == 1  # complete: not written again
    assert build((2, "a")) != folder and len(calls) == 2  # other arguments, another folder

    def fail(part: Path) -> None:
        (part / "half").write_text("x")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        synthetic_set(tmp_path, "broken", version=1, params=(), complete=lambda f: f.is_dir(), write=fail)
    assert not [p for p in tmp_path.iterdir() if "broken" in p.name]  # no half-built set under any name


@pytest.mark.parametrize("builder", ["motion", "motion-objects", "spoken-keywords", "sound-types",
                                     "spoken-languages"])
def test_each_builder_keeps_its_cache_folder_name(tmp_path: Path, builder: str):
    """The five offline sets still find the folders earlier versions of aip built (the same NAME-vV-HASH of
    the same default arguments), and write nothing when the files a finished build leaves are there."""
    import hashlib

    from modalities.audio import keywords, languages, sounds
    from modalities.video import motion, objects

    module, build, params, done = {  # done: what a finished build leaves (folders end in /)
        "motion": (motion, motion.build_motion_set, (32, 12, 8, 32), ["val/"]),
        "motion-objects": (objects, objects.build_object_set, (32, 12, 8, 32), ["clips.json"]),
        "spoken-keywords": (keywords, keywords.build_keyword_set,
                            (24, 5, keywords.KEYWORDS + keywords.UNKNOWN_WORDS), ["testing_list.txt"]),
        "sound-types": (sounds, sounds.build_sound_set, (48, 144, sounds.SECONDS),
                        [f"musan/{c}/" for c in sounds.MUSAN_CLASSES]),
        "spoken-languages": (languages, languages.build_language_set, (6, languages.WORDS, languages.VARIANTS),
                             [f"{lang}/" for lang in languages.VOXFORGE_LANGUAGES]),
    }[builder]
    key = hashlib.sha256(repr((module.VERSION, *params)).encode()).hexdigest()[:8]
    folder = tmp_path / f"{builder}-v{module.VERSION}-{key}"
    for rel in done:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).mkdir() if rel.endswith("/") else (folder / rel).touch()
    assert build(tmp_path) == folder
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]  # nothing else built
