"""Labelled audio clips the student is evaluated on (and a teacher may be trained on).

``speechcommands`` is Google Speech Commands v0.02 in the paper's 12-class protocol: the ten keywords yes, no,
up, down, left, right, on, off, stop, go, plus ``_unknown_`` (the other 25 words) and ``_silence_`` (1-s
windows cut from the dataset's ``_background_noise_`` recordings). Both splits are balanced like the official
12-class test set: ``_unknown_`` is subsampled (deterministically) and ``_silence_`` given as many items as an
average keyword has. ``speechcommands35`` is all 35 words. The split is the official one
(``validation_list.txt`` and ``testing_list.txt``; the test split is ``testing_list.txt``, training is every
clip in neither list). ``spoken-keywords`` is the same protocol on an offline set spoken by espeak-ng voices
(:mod:`modalities.audio.keywords`), built on first use. ``audiofolder`` is ``ROOT/train/CLASS/*`` and
``ROOT/test/CLASS/*`` (or ``val/``) of WAV/FLAC/OGG/MP3 clips.

Items are ``(waveform (1, samples), label)``: clips are read with soundfile, shorter ones zero-padded (centred
for testing, at a random place for training) and longer ones cropped. A clip that cannot be read, or whose
sample rate differs from the recipe's, is skipped with one counted warning; a split with no usable clip is an
:class:`~aip.errors.AipError`. ``train=True`` adds the usual keyword-spotting augmentation (time shift up to
100 ms, gain, background noise mixed in with probability 0.8 at volume up to 0.1).
"""

from __future__ import annotations

import functools
import hashlib
import sys
from collections import Counter
from pathlib import Path

import soundfile as sf
import torch
from torch.utils.data import Dataset

from aip.errors import AipError
from aip.modality import LabelledData
from modalities.audio.decode import read_audio

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine", "one",
                 "seven", "sheila", "six", "three", "tree", "two", "wow", "zero", "backward", "forward", "follow",
                 "learn", "visual")
UNKNOWN, SILENCE = "_unknown_", "_silence_"
NOISE_DIR = "_background_noise_"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
DATASETS = {
    "speechcommands": "Speech Commands v0.02, 12 classes (10 keywords, unknown, silence)",
    "speechcommands35": "Speech Commands v0.02, all 35 words",
    "spoken-keywords": "offline 12-class keyword set spoken by espeak-ng voices (built on first use)",
    "audiofolder": "ROOT/train/CLASS/*.wav and ROOT/test/CLASS/*.wav",
}


def _seed(*parts: object) -> int:
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16)


def probe(files: list[Path], *, rate: int, what: str) -> list[bool]:
    """Which ``files`` are readable clips at ``rate`` Hz; prints one counted warning for the others."""
    ok, why, first = [], Counter(), None
    for f in files:
        try:
            info = sf.info(str(f))
            good = info.samplerate == rate and info.frames > 0
            if not good:
                why[f"{info.samplerate} Hz instead of {rate} Hz" if info.frames else "empty"] += 1
        except (sf.LibsndfileError, RuntimeError):
            good = False
            why["unreadable"] += 1
        if not good and first is None:
            first = f
        ok.append(good)
    if why:
        reasons = ", ".join(f"{n} {r}" for r, n in why.items())
        print(f"warning: skipped {sum(why.values())} of {len(files)} clips of {what} ({reasons}; first: {first})",
              file=sys.stderr)
    if files and not any(ok):
        raise AipError(f"no usable clip in {what} ({reasons}); clips must be {rate} Hz audio files")
    return ok


def fit_length(wave: torch.Tensor, samples: int, *, random: bool) -> torch.Tensor:
    """Crop or zero-pad ``wave`` (n,) to ``samples``: centred, or at a random place when ``random``."""
    n = wave.numel()
    if n == samples:
        return wave
    room = abs(n - samples)
    at = int(torch.randint(room + 1, ()).item()) if random else room // 2
    if n > samples:
        return wave[at: at + samples]
    return torch.nn.functional.pad(wave, (at, samples - n - at))


class ClipDataset(Dataset):
    """Labelled clips from files plus ``silence`` windows cut from ``noise`` recordings."""

    def __init__(self, files: list[Path], labels: list[int], *, rate: int, samples: int, train: bool,
                 noise: list[torch.Tensor], silence: int, silence_label: int, seed: int) -> None:
        self.files, self.labels = files, labels
        self.rate, self.samples, self.train = rate, samples, train
        self.noise = [n for n in noise if n.numel() >= samples]
        self.silence_label = silence_label
        g = torch.Generator().manual_seed(seed)  # fixed silence windows for evaluation
        pick = lambda: float(torch.rand((), generator=g))  # noqa: E731
        self.silence = [(int(pick() * 1e6), pick(), pick()) for _ in range(silence)]  # (file, place, volume)

    def __len__(self) -> int:
        return len(self.files) + len(self.silence)

    def _noise(self, k: int, where: float) -> torch.Tensor:
        if not self.noise:
            return torch.zeros(self.samples)
        n = self.noise[k % len(self.noise)]
        at = int(where * (n.numel() - self.samples))
        return n[at: at + self.samples]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if i >= len(self.files):  # a silence window, at a volume in [0, 1]
            k, where, volume = self.silence[i - len(self.files)]
            if self.train:
                k, where, volume = int(torch.randint(1 << 16, ())), float(torch.rand(())), float(torch.rand(()))
            return (self._noise(k, where) * volume).unsqueeze(0), self.silence_label
        data, _ = sf.read(str(self.files[i]), dtype="float32", always_2d=True)
        wave = torch.from_numpy(data.mean(axis=1))
        if self.train:
            shift = int(torch.randint(-self.rate // 10, self.rate // 10 + 1, ()))
            wave = torch.roll(fit_length(wave, self.samples, random=True), shift)
            wave = wave * 10 ** (float(torch.empty(()).uniform_(-6, 6)) / 20)
            if self.noise and float(torch.rand(())) < 0.8:
                wave = wave + self._noise(int(torch.randint(1 << 16, ())), float(torch.rand(()))) * \
                    float(torch.rand(())) * 0.1
        else:
            wave = fit_length(wave, self.samples, random=False)
        return wave.unsqueeze(0), self.labels[i]


def find_speechcommands(root: Path, *, download: bool) -> Path:
    """The extracted Speech Commands folder under ``root`` (downloading through torchaudio if allowed)."""
    candidates = [root / "SpeechCommands" / "speech_commands_v0.02", root / "speech_commands_v0.02", root]
    for c in candidates:
        if (c / "testing_list.txt").is_file():
            return c
    if not download:
        raise AipError(f"Speech Commands v0.02 is not in {root} (no testing_list.txt found); set eval.download = "
                       "true, or eval.root to the folder holding speech_commands_v0.02")
    from torchaudio.datasets import SPEECHCOMMANDS

    try:
        root.mkdir(parents=True, exist_ok=True)
        SPEECHCOMMANDS(str(root), url="speech_commands_v0.02", download=True)
    except Exception as e:  # network, disk, archive errors from torchaudio's downloader
        raise AipError(f"could not download Speech Commands v0.02 into {root} ({type(e).__name__}: {e}); "
                       "download it by hand and set eval.root") from None
    return candidates[0]


@functools.lru_cache(maxsize=16)
def index_speechcommands(folder: Path, split: str, classes35: bool, rate: int) -> tuple[list[Path], list[int],
                                                                                        list[str], int]:
    """Files, labels, class names and the silence count of one split (balanced as described above)."""
    listed = {name: set((folder / f"{name}_list.txt").read_text().split()) if (folder / f"{name}_list.txt").is_file()
              else set() for name in ("validation", "testing")}
    words = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("_"))
    if not words:
        raise AipError(f"{folder} has no word folders; is it an extracted Speech Commands dataset?")
    files: dict[str, list[Path]] = {}
    for w in words:
        for f in sorted((folder / w).glob("*.wav")):
            rel = f"{w}/{f.name}"
            in_split = rel in listed["testing"] if split == "test" else \
                rel not in listed["testing"] and rel not in listed["validation"]
            if in_split:
                files.setdefault(w, []).append(f)
    what = f"{folder.name} ({split})"
    if classes35:
        classes = words
        pairs = [(f, i) for i, w in enumerate(words) for f in files.get(w, [])]
        silence = 0
    else:
        classes = [*KEYWORDS, UNKNOWN, SILENCE]
        missing = [w for w in KEYWORDS if w not in files]
        if missing:
            raise AipError(f"{what} has no clips of the keywords {', '.join(missing)}; the 12-class protocol "
                           "needs all ten")
        pairs = [(f, classes.index(w)) for w in KEYWORDS for f in files[w]]
        per_word = round(len(pairs) / len(KEYWORDS))
        unknown = [f for w in words if w not in KEYWORDS for f in files.get(w, [])]
        g = torch.Generator().manual_seed(_seed(folder.name, split))
        keep = torch.randperm(len(unknown), generator=g)[:per_word].sort().values.tolist()
        pairs += [(unknown[k], classes.index(UNKNOWN)) for k in keep]
        silence = per_word
    ok = probe([f for f, _ in pairs], rate=rate, what=what)
    pairs = [p for p, good in zip(pairs, ok) if good]
    if not pairs:
        raise AipError(f"{what} has no clips; check the dataset folder")
    return [f for f, _ in pairs], [y for _, y in pairs], classes, silence


def load_noise(folder: Path, *, rate: int) -> list[torch.Tensor]:
    noise_dir = folder / NOISE_DIR
    return [read_audio(f, rate=rate, what="background noise file") for f in sorted(noise_dir.glob("*.wav"))] \
        if noise_dir.is_dir() else []


def speechcommands(folder: Path, *, split: str, train: bool, classes35: bool, rate: int,
                   samples: int) -> LabelledData:
    files, labels, classes, silence = index_speechcommands(folder, split, classes35, rate)
    noise = load_noise(folder, rate=rate)
    if silence and not noise:
        print(f"warning: {folder} has no {NOISE_DIR}/ recordings; the silence class is digital silence",
              file=sys.stderr)
    ds = ClipDataset(files, labels, rate=rate, samples=samples, train=train, noise=noise, silence=silence,
                     silence_label=classes.index(SILENCE) if SILENCE in classes else -1, seed=_seed(split))
    return LabelledData(dataset=ds, num_classes=len(classes), classes=classes)


def audiofolder(root: Path, *, split: str, train: bool, rate: int, samples: int) -> LabelledData:
    names = ["train"] if split == "train" else ["test", "val"]
    base = next((root / n for n in names if (root / n).is_dir()), None)
    if base is None:
        raise AipError(f"audiofolder {root} has no {' or '.join(names)}/ folder of class folders; "
                       "set eval.root to a folder with train/CLASS/*.wav and test/CLASS/*.wav")
    classes = sorted(d.name for d in base.iterdir() if d.is_dir())
    pairs = [(f, i) for i, c in enumerate(classes) for f in sorted((base / c).iterdir())
             if f.suffix.lower() in AUDIO_EXTENSIONS]
    if not pairs:
        raise AipError(f"audiofolder {base} holds no audio clips ({', '.join(AUDIO_EXTENSIONS)})")
    ok = probe([f for f, _ in pairs], rate=rate, what=f"audiofolder {base}")
    pairs = [p for p, good in zip(pairs, ok) if good]
    ds = ClipDataset([f for f, _ in pairs], [y for _, y in pairs], rate=rate, samples=samples, train=train,
                     noise=[], silence=0, silence_label=-1, seed=0)
    return LabelledData(dataset=ds, num_classes=len(classes), classes=classes)


def load(name: str, *, root: Path, split: str, train: bool, download: bool, rate: int,
         samples: int) -> LabelledData:
    """The labelled ``split`` (``train`` or ``test``) of dataset ``name``.

    Raises:
        AipError: unknown name (listing the known ones), missing or unusable files, failed download.
    """
    if name not in DATASETS:
        raise AipError(f"unknown audio dataset {name!r}; known: {', '.join(DATASETS)}")
    if name == "audiofolder":
        return audiofolder(root, split=split, train=train, rate=rate, samples=samples)
    if name == "spoken-keywords":
        from modalities.audio.keywords import build_keyword_set

        folder = build_keyword_set(root)
    else:
        folder = find_speechcommands(root, download=download)
    return speechcommands(folder, split=split, train=train, classes35=name == "speechcommands35", rate=rate,
                          samples=samples)
