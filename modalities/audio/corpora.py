"""The file lists of three speech and sound corpora in their distributed layouts, with the protocols aip uses.

The paper (Asano & Saeed, ICLR 2023) names the tasks (MUSAN: speech / music / noise; Voxforge: 6 languages;
LibriSpeech: 100 speakers) but not their splits. The splits below are aip's choices, all UNCONFIRMED: they
follow COLA (Saeed et al., ICASSP 2021), whose downstream tasks the paper's audio table matches, where COLA's
pipeline is known (TFDS ``voxforge``: 6 languages, split by speaker), and are otherwise plain and
deterministic. Every split is decided by a hash of a name (not by a random generator, not by file order), so
it does not change when files are added, removed or listed in another order, and it is the same on every
machine. About 20 % of the groups go to the test split (``TEST_SHARE``).

- ``musan``: ``ROOT/{music,speech,noise}/SUBSET/*.wav`` as the archive from openslr.org/17 extracts (``musan/``
  or its contents under ``ROOT``); 3 classes, the top-level folder; a file's split is the hash of its path
  relative to the class folder.
- ``voxforge``: ``ROOT/LANG/SPEAKER-DATE-ID/wav/*.wav`` for LANG in de, en, es, fr, it, ru (TFDS ``voxforge``'s
  six languages and label order), each ``SPEAKER-DATE-ID.tgz`` archive of a language's ``16kHz_16bit`` folder
  on repository.voxforge1.org extracted into the language's folder. The split is by speaker (the archive
  name up to its first ``-``), as TFDS splits it, so no test speaker is heard in training; archives of
  ``anonymous`` speakers count as a speaker each (TFDS puts them all into one group).
- ``librispeech``: ``ROOT/LibriSpeech/train-clean-100/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac`` (as
  openslr.org/12 and torchaudio extract it; ``train-clean-100/`` or its speaker folders under ``ROOT`` work
  too). The 100 classes are the 100 speakers with the smallest numeric IDs of that subset (251 speakers);
  a speaker-identification task needs every speaker in both splits, so each utterance's split is the hash
  of its ID (``SPEAKER-CHAPTER-UTT``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from aip.errors import AipError
from modalities.audio.labels import AUDIO_EXTENSIONS

#: the share of files (MUSAN, LibriSpeech) or speakers (Voxforge) in the test split
TEST_SHARE = 0.2
MUSAN_CLASSES = ("speech", "music", "noise")
VOXFORGE_LANGUAGES = ("de", "en", "es", "fr", "it", "ru")
LIBRISPEECH_SPEAKERS = 100
LIBRISPEECH_SUBSET = "train-clean-100"

Index = tuple[list[Path], list[int], list[str]]


def in_test(*key: str) -> bool:
    """Whether the group named ``key`` belongs to the test split: a hash of the name, about TEST_SHARE of all."""
    h = int(hashlib.sha256("/".join(key).encode()).hexdigest()[:8], 16)
    return h / 2**32 < TEST_SHARE


def _audio_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file())


def _pick(split: str, test: bool) -> bool:
    return test if split == "test" else not test


def _first(candidates: list[Path], looks_right, what: str, layout: str) -> Path:
    for c in candidates:
        if c.is_dir() and looks_right(c):
            return c
    raise AipError(f"{what} is not in {candidates[-1]}; expected {layout} (set eval.root to the folder that "
                   "holds it; it cannot be downloaded automatically)")


def musan(root: Path, split: str) -> Index:
    """MUSAN's files of ``split`` with labels 0 speech, 1 music, 2 noise."""
    folder = _first([root / "musan", root], lambda c: all((c / k).is_dir() for k in MUSAN_CLASSES), "MUSAN",
                    "ROOT/musan/{speech,music,noise}/SUBSET/*.wav (the extracted musan.tar.gz of openslr.org/17)")
    files, labels = [], []
    for label, name in enumerate(MUSAN_CLASSES):
        for f in _audio_files(folder / name):
            if _pick(split, in_test("musan", f.relative_to(folder / name).as_posix())):
                files.append(f)
                labels.append(label)
    return files, labels, list(MUSAN_CLASSES)


def voxforge_speaker(archive: str) -> str:
    """The speaker of a Voxforge archive folder ``SPEAKER-DATE-ID`` (the whole name for ``anonymous``)."""
    speaker = archive.split("-")[0]
    return archive if speaker.lower() == "anonymous" else speaker


def voxforge(root: Path, split: str) -> Index:
    """Voxforge's files of ``split`` with labels in VOXFORGE_LANGUAGES' order, split by speaker."""
    layout = "ROOT/LANG/SPEAKER-DATE-ID/wav/*.wav for LANG in " + ", ".join(VOXFORGE_LANGUAGES)
    folder = _first([root / "voxforge", root], lambda c: any((c / k).is_dir() for k in VOXFORGE_LANGUAGES),
                    "Voxforge", layout)
    missing = [k for k in VOXFORGE_LANGUAGES if not (folder / k).is_dir()]
    if missing:
        raise AipError(f"Voxforge in {folder} lacks the language folders {', '.join(missing)}; the 6-language "
                       f"task needs all six ({layout})")
    files, labels = [], []
    for label, lang in enumerate(VOXFORGE_LANGUAGES):
        for archive in sorted(d for d in (folder / lang).iterdir() if d.is_dir()):
            if _pick(split, in_test("voxforge", lang, voxforge_speaker(archive.name))):
                found = _audio_files(archive)
                files += found
                labels += [label] * len(found)
    return files, labels, list(VOXFORGE_LANGUAGES)


def librispeech_folder(root: Path) -> Path | None:
    """The speaker folders' parent under ``root`` (``LibriSpeech/train-clean-100``, ``train-clean-100`` or
    ``root`` itself), or None."""
    for c in (root / "LibriSpeech" / LIBRISPEECH_SUBSET, root / LIBRISPEECH_SUBSET, root):
        if c.is_dir() and any(d.is_dir() and d.name.isdigit() for d in c.iterdir()):
            return c
    return None


def librispeech(folder: Path, split: str) -> Index:
    """The utterances of ``split`` of the LIBRISPEECH_SPEAKERS speakers with the smallest IDs; label = rank."""
    speakers = sorted((d for d in folder.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name))
    if len(speakers) < LIBRISPEECH_SPEAKERS:
        raise AipError(f"LibriSpeech in {folder} has {len(speakers)} speaker folders; the speaker task needs "
                       f"{LIBRISPEECH_SPEAKERS} (use {LIBRISPEECH_SUBSET}, which has 251)")
    speakers = speakers[:LIBRISPEECH_SPEAKERS]
    files, labels = [], []
    for label, spk in enumerate(speakers):
        for f in _audio_files(spk):
            if _pick(split, in_test("librispeech", f.stem)):
                files.append(f)
                labels.append(label)
    return files, labels, [d.name for d in speakers]
