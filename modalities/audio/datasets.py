"""Labelled audio clips the student is evaluated on (and a teacher may be trained on).

``speechcommands`` is Google Speech Commands v0.02 in the paper's 12-class protocol: the ten keywords yes, no,
up, down, left, right, on, off, stop, go, plus ``_unknown_`` (the other 25 words) and ``_silence_`` (1-s
windows cut from the dataset's ``_background_noise_`` recordings). Both splits are balanced like the official
12-class test set: ``_unknown_`` is subsampled (deterministically) and ``_silence_`` given as many items as an
average keyword has. ``speechcommands35`` is all 35 words. The split is the official one
(``validation_list.txt`` and ``testing_list.txt``; the test split is ``testing_list.txt``, training is every
clip in neither list). ``spoken-keywords`` is the same protocol on an offline set spoken by espeak-ng voices
(:mod:`modalities.audio.keywords`), built on first use. ``audiofolder`` is ``ROOT/train/CLASS/*`` and
``ROOT/test/CLASS/*`` (or ``val/``) of WAV/FLAC/OGG/MP3 clips. ``musan``, ``voxforge`` and ``librispeech`` are
read in their distributed layouts with the splits of :mod:`modalities.audio.corpora`; ``spoken-languages``
and ``sound-types`` are offline sets in the Voxforge and MUSAN layouts (:mod:`modalities.audio.languages`,
:mod:`modalities.audio.sounds`), built on first use and read by those same loaders.

Items are ``(waveform (1, samples), label)``: clips are read with soundfile, shorter ones zero-padded (centred
for testing, at a random place for training) and longer ones cropped (centred for testing; for training a
random window, read from the file alone; the long recordings of MUSAN, Voxforge and LibriSpeech give a random
window of their training split also without ``train``, so ``dataset:train`` hears all of them). With
``windows`` > 1 (the recipe's ``source.test_windows``) every test item is instead ``(windows, 1, samples)``:
non-overlapping windows of the file whose softmax the evaluator averages (:func:`split_windows`). A clip that
cannot be read, or whose sample rate differs from the recipe's, is skipped with one counted warning; a split
with no usable clip is an :class:`~aip.errors.AipError`. ``train=True`` adds the usual keyword-spotting
augmentation (time shift up to 100 ms, gain, background noise mixed in with probability 0.8 at volume up to
0.1).
"""

from __future__ import annotations

import functools
import hashlib
import math
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
import torch
from einops import rearrange
from torch.utils.data import Dataset

from aip.errors import AipError, UsageError
from aip.folders import empty_classes_error, split_classes, visible
from aip.modality import LabelledData
from aip.registry import Registry
from modalities.audio import corpora
from modalities.audio.decode import read_audio, resample
from modalities.audio.labels import AUDIO_EXTENSIONS, KEYWORDS, NOISE_DIR, SILENCE, UNKNOWN, UNKNOWN_WORDS

__all__ = ["AUDIO_EXTENSIONS", "DATASETS", "KEYWORDS", "NOISE_DIR", "SILENCE", "UNKNOWN", "UNKNOWN_WORDS", "load"]


@dataclass(frozen=True)
class AudioDataset:
    """A registered dataset: one line for ``aip list`` and ``load(root, *, split, train, download, rate,
    samples, windows) -> LabelledData``."""

    description: str
    load: Callable[..., LabelledData]


DATASETS: Registry[AudioDataset] = Registry("audio dataset")


def _register(name: str, description: str) -> Callable[[Callable[..., LabelledData]], Callable[..., LabelledData]]:
    def add(fn: Callable[..., LabelledData]) -> Callable[..., LabelledData]:
        DATASETS.register(name)(AudioDataset(description, fn))
        return fn

    return add


def _seed(*parts: object) -> int:
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16)


def probe_frames(files: list[Path], *, rate: int, what: str) -> list[int]:
    """The length of each of ``files`` in samples at ``rate`` Hz (a clip at another rate is resampled when it
    is read, :meth:`ClipDataset._read`), 0 for unreadable or empty files; prints one counted warning for those.
    """
    frames, why, first = [], Counter(), None
    for f in files:
        try:
            info = sf.info(str(f))
            n = round(info.frames * rate / info.samplerate) if info.samplerate > 0 else 0
            if not n:
                why["empty"] += 1
        except (sf.LibsndfileError, RuntimeError):
            n = 0
            why["unreadable"] += 1
        if not n and first is None:
            first = f
        frames.append(n)
    if why:
        reasons = ", ".join(f"{n} {r}" for r, n in why.items())
        print(f"warning: skipped {sum(why.values())} of {len(files)} clips of {what} ({reasons}; first: {first})",
              file=sys.stderr)
    if files and not any(frames):
        raise AipError(f"no usable clip in {what} ({reasons}); clips must be non-empty audio files that soundfile "
                       "reads (WAV, FLAC, OGG, MP3)")
    return frames


def probe(files: list[Path], *, rate: int, what: str) -> list[bool]:
    """Which ``files`` are readable clips at ``rate`` Hz; prints one counted warning for the others."""
    return [n > 0 for n in probe_frames(files, rate=rate, what=what)]


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


def window_starts(frames: int, samples: int, windows: int) -> list[int] | None:
    """Where :func:`split_windows` cuts ``windows`` windows from a ``frames``-sample file: the centred window of
    each of ``windows`` equal parts (non-overlapping), or None when the file is shorter than ``windows``
    windows (it is looped instead)."""
    if frames < windows * samples:
        return None
    part = frames / windows
    return [round(k * part + (part - samples) / 2) for k in range(windows)]


def split_windows(wave: torch.Tensor, samples: int, windows: int) -> torch.Tensor:
    """A whole recording ``(n,)`` as ``windows`` non-overlapping windows ``(windows, 1, samples)``.

    A recording of at least ``windows`` windows gives the centred window of each of ``windows`` equal parts, so
    the windows cover it evenly from start to end. A shorter one is looped (repeated end to end) to exactly
    ``windows`` windows and cut into them: every window then holds the recording's own sound, where zero
    padding would add silent windows whose (meaningless) predictions would count in the average as much as
    the others. The number of windows is fixed, so items of any length stack into one batch.
    """
    starts = window_starts(wave.numel(), samples, windows)
    if starts is None:
        reps = -(-windows * samples // max(wave.numel(), 1))
        flat = wave.repeat(reps)[: windows * samples]
    else:
        flat = torch.cat([wave[s: s + samples] for s in starts])
    return rearrange(flat, "(v t) -> v 1 t", v=windows)


class ClipDataset(Dataset):
    """Labelled clips from files plus ``silence`` windows cut from ``noise`` recordings.

    ``frames`` (the files' lengths from :func:`probe_frames`) lets a random window be read from the file alone;
    ``random_crop`` draws that window also without ``train`` (the training split of long recordings);
    ``windows`` > 1 makes every item ``(windows, 1, samples)`` (:func:`split_windows`)."""

    def __init__(self, files: list[Path], labels: list[int], *, rate: int, samples: int, train: bool,
                 noise: list[torch.Tensor], silence: int, silence_label: int, seed: int,
                 frames: list[int] | None = None, random_crop: bool = False, windows: int = 1) -> None:
        self.files, self.labels = files, labels
        self.rate, self.samples, self.train = rate, samples, train
        self.frames, self.random_crop, self.windows = frames, random_crop, windows
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

    def _read(self, i: int, start: int = 0, count: int = -1) -> torch.Tensor:
        """Samples ``start`` to ``start + count`` (all with -1) of file ``i`` at ``self.rate`` Hz, mixed down to
        mono. A file at another rate is read over the same stretch of time, with a few samples of margin for the
        resampling filter, and resampled (:func:`~modalities.audio.decode.resample`)."""
        with sf.SoundFile(str(self.files[i])) as f:  # one open: the rate, then the samples
            native = f.samplerate
            if native == self.rate:
                f.seek(start)
                return torch.from_numpy(f.read(count, dtype="float32", always_2d=True).mean(axis=1))
            # native samples each side, beyond the sinc filter's reach (6 zero crossings of the lower rate), so
            # the stretch's samples equal those of the whole file resampled
            margin = 16 * -(-native // self.rate) + 16
            # the read starts where a native and an output sample coincide (every native / gcd native samples),
            # so the output's samples fall on the whole file's grid
            step = native // math.gcd(native, self.rate)
            at = max(0, (start * native // self.rate - margin) // step * step)
            f.seek(at)
            data = f.read(-1 if count < 0 else math.ceil(count * native / self.rate) + 2 * margin + step,
                          dtype="float32", always_2d=True)
        wave = resample(torch.from_numpy(data.mean(axis=1)), native, self.rate)
        skip = start - at * self.rate // native
        return wave[skip:] if count < 0 else wave[skip: skip + count]

    def _random_window(self, i: int) -> torch.Tensor:
        n = self.frames[i] if self.frames else 0
        if n > self.samples:  # read only the window
            return fit_length(self._read(i, int(torch.randint(n - self.samples + 1, ())), self.samples),
                              self.samples, random=True)
        return fit_length(self._read(i), self.samples, random=True)

    def _views(self, wave: torch.Tensor) -> torch.Tensor:
        """``(1, samples)``, or the same window as every view of a multi-view item."""
        return wave.unsqueeze(0) if self.windows == 1 else wave.expand(self.windows, 1, -1).clone()

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if i >= len(self.files):  # a silence window, at a volume in [0, 1]
            k, where, volume = self.silence[i - len(self.files)]
            if self.train:
                k, where, volume = int(torch.randint(1 << 16, ())), float(torch.rand(())), float(torch.rand(()))
            return self._views(self._noise(k, where) * volume), self.silence_label
        if self.train:
            shift = int(torch.randint(-self.rate // 10, self.rate // 10 + 1, ()))
            wave = torch.roll(self._random_window(i), shift)
            wave = wave * 10 ** (float(torch.empty(()).uniform_(-6, 6)) / 20)
            if self.noise and float(torch.rand(())) < 0.8:
                wave = wave + self._noise(int(torch.randint(1 << 16, ())), float(torch.rand(()))) * \
                    float(torch.rand(())) * 0.1
            return wave.unsqueeze(0), self.labels[i]
        if self.random_crop:
            return self._random_window(i).unsqueeze(0), self.labels[i]
        if self.windows > 1:
            n = self.frames[i] if self.frames else 0
            starts = window_starts(n, self.samples, self.windows)
            if starts is not None:  # read the windows alone, not the whole (possibly hour-long) file
                flat = torch.cat([fit_length(self._read(i, s, self.samples), self.samples, random=False)
                                  for s in starts])
                return rearrange(flat, "(v t) -> v 1 t", v=self.windows), self.labels[i]
            return split_windows(self._read(i), self.samples, self.windows), self.labels[i]
        return fit_length(self._read(i), self.samples, random=False).unsqueeze(0), self.labels[i]


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


def _views(split: str, train: bool, windows: int) -> int:
    """Views per item: ``windows`` for the evaluated test split, one window otherwise."""
    return windows if split == "test" and not train else 1


def speechcommands(folder: Path, *, split: str, train: bool, classes35: bool, rate: int, samples: int,
                   windows: int = 1) -> LabelledData:
    files, labels, classes, silence = index_speechcommands(folder, split, classes35, rate)
    noise = load_noise(folder, rate=rate)
    if silence and not noise:
        print(f"warning: {folder} has no {NOISE_DIR}/ recordings; the silence class is digital silence",
              file=sys.stderr)
    views = _views(split, train, windows)
    ds = ClipDataset(files, labels, rate=rate, samples=samples, train=train, noise=noise, silence=silence,
                     silence_label=classes.index(SILENCE) if SILENCE in classes else -1, seed=_seed(split),
                     windows=views)
    return LabelledData(dataset=ds, num_classes=len(classes), classes=classes, views=views)


@_register("speechcommands", "Speech Commands v0.02, 12 classes (10 keywords, unknown, silence)")
def _load_speechcommands(root: Path, *, split: str, train: bool, download: bool, rate: int, samples: int,
                         windows: int = 1) -> LabelledData:
    return speechcommands(find_speechcommands(root, download=download), split=split, train=train, classes35=False,
                          rate=rate, samples=samples, windows=windows)


@_register("speechcommands35", "Speech Commands v0.02, all 35 words")
def _load_speechcommands35(root: Path, *, split: str, train: bool, download: bool, rate: int, samples: int,
                           windows: int = 1) -> LabelledData:
    return speechcommands(find_speechcommands(root, download=download), split=split, train=train, classes35=True,
                          rate=rate, samples=samples, windows=windows)


@_register("spoken-keywords", "offline 12-class keyword set spoken by espeak-ng voices (built on first use)")
def _load_spoken_keywords(root: Path, *, split: str, train: bool, download: bool, rate: int, samples: int,
                          windows: int = 1) -> LabelledData:
    from modalities.audio.keywords import build_keyword_set  # imports espeak-ng's wrapper only when asked for

    return speechcommands(build_keyword_set(root), split=split, train=train, classes35=False, rate=rate,
                          samples=samples, windows=windows)


@_register("spoken-languages", "offline 6-language set (Voxforge's task) spoken by espeak-ng voices (built on first "
                              "use)")
def _load_spoken_languages(root: Path, *, split: str, train: bool, download: bool, rate: int, samples: int,
                           windows: int = 1) -> LabelledData:
    from modalities.audio.languages import build_language_set

    return recordings("voxforge", build_language_set(root), split=split, train=train, rate=rate, samples=samples,
                      windows=windows)


@_register("sound-types", "offline speech / music / noise set (MUSAN's task), synthesised (built on first use)")
def _load_sound_types(root: Path, *, split: str, train: bool, download: bool, rate: int, samples: int,
                      windows: int = 1) -> LabelledData:
    from modalities.audio.sounds import build_sound_set

    return recordings("musan", build_sound_set(root), split=split, train=train, rate=rate, samples=samples,
                      windows=windows)


@_register("audiofolder", "ROOT/train/CLASS/*.wav and ROOT/test/CLASS/*.wav")
def audiofolder(root: Path, *, split: str, train: bool, download: bool = False, rate: int, samples: int,
                windows: int = 1) -> LabelledData:
    names = ["train"] if split == "train" else ["test", "val"]
    base = next((root / n for n in names if (root / n).is_dir()), None)
    if base is None:
        raise AipError(f"audiofolder {root} has no {' or '.join(names)}/ folder of class folders; "
                       "set eval.root to a folder with train/CLASS/*.wav and test/CLASS/*.wav")
    classes = split_classes(root, base, "audiofolder")  # the train folder's, so labels match across splits
    pairs = [(f, i) for i, c in enumerate(classes) if (base / c).is_dir() for f in sorted((base / c).iterdir())
             if f.suffix.lower() in AUDIO_EXTENSIONS and visible(f.name)]
    if not pairs:
        raise AipError(f"audiofolder {base} holds no audio clips ({', '.join(AUDIO_EXTENSIONS)})")
    heard = {i for _, i in pairs}
    if split == "train" and len(heard) < len(classes):
        raise empty_classes_error("audiofolder", base, [c for i, c in enumerate(classes) if i not in heard],
                                  f"audio clips ({', '.join(AUDIO_EXTENSIONS)})")
    frames = probe_frames([f for f, _ in pairs], rate=rate, what=f"audiofolder {base}")
    keep = [k for k, n in enumerate(frames) if n]
    views = _views(split, train, windows)
    ds = ClipDataset([pairs[k][0] for k in keep], [pairs[k][1] for k in keep], rate=rate, samples=samples,
                     train=train, noise=[], silence=0, silence_label=-1, seed=0, frames=[frames[k] for k in keep],
                     windows=views)
    return LabelledData(dataset=ds, num_classes=len(classes), classes=classes, views=views)


# --- long recordings: MUSAN, Voxforge, LibriSpeech (file lists and splits in modalities.audio.corpora) ---------


@functools.lru_cache(maxsize=16)
def index_recordings(name: str, folder: Path, split: str, rate: int) -> tuple[list[Path], list[int], list[int],
                                                                               list[str]]:
    """Files, labels, lengths (samples) and class names of one split, unusable files skipped with a warning."""
    index = {"musan": corpora.musan, "voxforge": corpora.voxforge, "librispeech": corpora.librispeech}[name]
    files, labels, classes = index(folder, split)
    if not files:
        raise AipError(f"{name} in {folder} has no audio files ({', '.join(AUDIO_EXTENSIONS)}) in its {split} "
                       "split; check the folder layout (docs/audio.md)")
    frames = probe_frames(files, rate=rate, what=f"{name} {split} ({folder})")
    keep = [k for k, n in enumerate(frames) if n]
    return [files[k] for k in keep], [labels[k] for k in keep], [frames[k] for k in keep], classes


def recordings(name: str, folder: Path, *, split: str, train: bool, rate: int, samples: int,
               windows: int) -> LabelledData:
    files, labels, frames, classes = index_recordings(name, folder, split, rate)
    views = _views(split, train, windows)
    ds = ClipDataset(files, labels, rate=rate, samples=samples, train=train, noise=[], silence=0, silence_label=-1,
                     seed=0, frames=frames, random_crop=split == "train", windows=views)
    return LabelledData(dataset=ds, num_classes=len(classes), classes=classes, views=views)


@_register("musan", "MUSAN, 3 classes (speech, music, noise), ROOT/musan/{speech,music,noise}/SUBSET/*.wav")
def _load_musan(root: Path, *, split: str, train: bool, download: bool, rate: int, samples: int,
                windows: int = 1) -> LabelledData:
    return recordings("musan", root, split=split, train=train, rate=rate, samples=samples, windows=windows)


@_register("voxforge", "Voxforge, 6 languages (de en es fr it ru), ROOT/LANG/SPEAKER-DATE-ID/wav/*.wav")
def _load_voxforge(root: Path, *, split: str, train: bool, download: bool, rate: int, samples: int,
                   windows: int = 1) -> LabelledData:
    return recordings("voxforge", root, split=split, train=train, rate=rate, samples=samples, windows=windows)


def find_librispeech(root: Path, *, download: bool) -> Path:
    """The speaker folders of LibriSpeech train-clean-100 under ``root`` (downloading through torchaudio if
    allowed)."""
    folder = corpora.librispeech_folder(root)
    if folder is not None:
        return folder
    subset = corpora.LIBRISPEECH_SUBSET
    if not download:
        raise AipError(f"LibriSpeech {subset} is not in {root} (no speaker folders found); set eval.download = "
                       f"true, or eval.root to the folder holding LibriSpeech/{subset}")
    from torchaudio.datasets import LIBRISPEECH

    try:
        root.mkdir(parents=True, exist_ok=True)
        LIBRISPEECH(str(root), url=subset, download=True)
    except Exception as e:  # network, disk, archive errors from torchaudio's downloader
        raise AipError(f"could not download LibriSpeech {subset} into {root} ({type(e).__name__}: {e}); "
                       "download it by hand from openslr.org/12 and set eval.root") from None
    folder = corpora.librispeech_folder(root)
    if folder is None:
        raise AipError(f"the LibriSpeech {subset} download into {root} holds no speaker folders; delete "
                       f"{root / 'LibriSpeech'} and download it again")
    return folder


@_register("librispeech", "LibriSpeech train-clean-100, 100 speakers (SPEAKER/CHAPTER/*.flac)")
def _load_librispeech(root: Path, *, split: str, train: bool, download: bool, rate: int, samples: int,
                      windows: int = 1) -> LabelledData:
    return recordings("librispeech", find_librispeech(root, download=download), split=split, train=train,
                      rate=rate, samples=samples, windows=windows)


def load(name: str, *, root: Path, split: str, train: bool, download: bool, rate: int, samples: int,
         windows: int = 1) -> LabelledData:
    """The labelled ``split`` (``train`` or ``test``) of dataset ``name``; ``windows`` > 1 makes the test split's
    items ``(windows, 1, samples)`` (non-overlapping windows whose softmax the evaluator averages).

    Raises:
        AipError: unknown name (listing the known ones), missing or unusable files, failed download.
    """
    if split not in ("train", "test"):
        raise UsageError(f"unknown split {split!r} for audio dataset {name!r}; use 'train' or 'test'")
    return DATASETS.get(name).load(root, split=split, train=train, download=download, rate=rate, samples=samples,
                                   windows=windows)
