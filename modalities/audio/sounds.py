"""The offline ``sound-types`` set (MUSAN's task: speech, music, noise) and the ``espeak:radio`` source recording.

The set is written in MUSAN's own layout (``musan/{speech,music,noise}/SUBSET/*.wav``), so it is read by the very
same loader and hash split:

- ``speech/espeak``: espeak-ng voices of six languages (:mod:`modalities.audio.languages`' word lists) reading
  8-14 words, with a little background noise;
- ``music/{melodies,chords,band}``: a small additive synthesiser (:func:`instrument_note`, four timbres with
  their own envelopes, vibrato and harmonics) playing melodies in a random key, scale and tempo, chord
  progressions (held or arpeggiated, with a bass line), and a band of drums, bass and a lead;
- ``noise/{coloured,rain,wind,machine,crackle}``: coloured noise with a drifting level, rain (many small
  decaying drops over a hiss), wind (noise through a slowly swept band), machines (a motor's pulse train and
  mains hum) and crackle (sparse clicks over static).

``espeak:radio`` is what a user would record off the air to distil such a classifier:
:data:`~modalities.audio.espeak.PROSE` read by the prose voices, four sentences at a time, with a
plucked-string jingle after every second stretch of talk and an outside-broadcast street bed under some of
them. Its music comes from another synthesiser (Karplus-Strong plucked strings, :func:`pluck`), its speech
from another text and other voices, so the recording holds none of the set's material.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from aip.cache import cache_dir, synthetic_set
from aip.files import atomic_path
from modalities.audio.corpora import MUSAN_CLASSES
from modalities.audio.espeak import PROSE, PROSE_VOICES, Voice, executable, speak, spoken
from modalities.audio.languages import VARIANTS, WORDS

RATE = 16_000
SECONDS = 4.0
VERSION = 1
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10), "pentatonic": (0, 2, 4, 7, 9),
          "dorian": (0, 2, 3, 5, 7, 9, 10)}
#: additive timbres: relative amplitudes of harmonics 1..n, (attack, decay, sustain level, release) in seconds
TIMBRES = {
    "flute": ((1.0, 0.25, 0.1, 0.05), (0.06, 0.1, 0.8, 0.1)),
    "organ": ((1.0, 0.0, 0.5, 0.0, 0.3, 0.0, 0.2), (0.01, 0.05, 0.9, 0.05)),
    "strings": ((1.0, 0.5, 0.33, 0.25, 0.2, 0.16, 0.14, 0.12), (0.12, 0.2, 0.7, 0.2)),
    "piano": ((1.0, 0.6, 0.3, 0.2, 0.1, 0.05), (0.005, 0.6, 0.15, 0.3)),
}
Rng = np.random.Generator


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def instrument_note(midi: float, seconds: float, timbre: str, rng: Rng, *, level: float = 1.0) -> np.ndarray:
    """One note of an additive instrument: harmonics with vibrato under an ADSR envelope."""
    harmonics, (a, d, s, r) = TIMBRES[timbre]
    n = max(int(seconds * RATE), 1)
    t = np.arange(n) / RATE
    vibrato = 1 + rng.uniform(0, 0.006) * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
    phase = 2 * np.pi * _hz(midi) * np.cumsum(vibrato) / RATE
    wave = sum(h * np.sin((k + 1) * phase) for k, h in enumerate(harmonics) if (k + 1) * _hz(midi) < RATE / 2)
    env = np.interp(t, [0, a, a + d, max(seconds - r, a + d), seconds], [0, 1, s, s, 0])
    return (wave * env * level).astype(np.float32)


def _add(track: np.ndarray, sound: np.ndarray, at: float) -> None:
    i = int(at * RATE)
    if i < track.size:
        track[i: i + sound.size] += sound[: track.size - i]


def _drum(kind: str, rng: Rng) -> np.ndarray:
    t = np.arange(int(0.25 * RATE)) / RATE
    if kind == "kick":
        f = 45 + 100 * np.exp(-t * 30)
        return np.sin(2 * np.pi * np.cumsum(f) / RATE) * np.exp(-t * rng.uniform(12, 20))
    noise = rng.standard_normal(t.size)
    if kind == "snare":
        return 0.6 * noise * np.exp(-t * 25) + 0.4 * np.sin(2 * np.pi * 190 * t) * np.exp(-t * 30)
    return 0.3 * np.diff(noise, prepend=0) * np.exp(-t * 80)  # hi-hat: differentiated (bright) noise, short


def music(kind: str, rng: Rng, seconds: float = SECONDS) -> np.ndarray:
    """``seconds`` of synthesised music: ``melodies``, ``chords`` or ``band``."""
    track = np.zeros(int(seconds * RATE), np.float32)
    scale = SCALES[rng.choice(list(SCALES))]
    root = int(rng.integers(48, 60))
    beat = 60 / rng.uniform(70, 160)
    degree = lambda d: root + 12 * (d // len(scale)) + scale[d % len(scale)]  # noqa: E731
    if kind in ("melodies", "band"):
        timbre = str(rng.choice(list(TIMBRES)))
        at, d = 0.0, int(rng.integers(5, 10))
        while at < seconds:
            dur = beat * float(rng.choice([0.5, 1, 1, 2]))
            d = int(np.clip(d + rng.integers(-2, 3), 0, 13))
            _add(track, instrument_note(degree(d) + 12, dur * 0.95, timbre, rng, level=0.5), at)
            at += dur
    if kind in ("chords", "band"):
        timbre = str(rng.choice(list(TIMBRES)))
        arpeggio = kind == "chords" and rng.random() < 0.5
        at, bar = 0.0, beat * 4
        while at < seconds:
            first = int(rng.choice([0, 3, 4, 5]))
            notes = [degree(first + k) for k in (0, 2, 4)]
            for j, m in enumerate(notes):
                start = at + (j * beat if arpeggio else 0)
                _add(track, instrument_note(m, bar - (start - at), timbre, rng, level=0.25), start)
            _add(track, instrument_note(notes[0] - 12, bar, "piano", rng, level=0.4), at)  # bass
            at += bar
    if kind == "band":
        pattern = rng.random((3, 8)) < np.array([[0.6], [0.3], [0.8]])
        pattern[0, 0] = pattern[1, 4] = True
        for step in range(int(seconds / (beat / 2)) + 1):
            for row, name in enumerate(("kick", "snare", "hat")):
                if pattern[row, step % 8]:
                    _add(track, _drum(name, rng) * 0.7, step * beat / 2)
    return track


def _band(noise: np.ndarray, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(noise)
    f = np.fft.rfftfreq(noise.size, 1 / RATE)
    return np.fft.irfft(spec * ((f >= lo) & (f <= hi)), noise.size)


def _coloured(n: int, beta: float, rng: Rng) -> np.ndarray:
    f = np.fft.rfftfreq(n, 1 / RATE).clip(20, None)
    x = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * f ** (-beta / 2), n)
    return x / (np.abs(x).max() + 1e-9)


def noise(kind: str, rng: Rng, seconds: float = SECONDS) -> np.ndarray:
    """``seconds`` of a noise texture: ``coloured``, ``rain``, ``wind``, ``machine`` or ``crackle``."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    if kind == "coloured":
        level = np.interp(t, np.linspace(0, seconds, 5), rng.uniform(0.3, 1.0, 5))
        return (_coloured(n, rng.uniform(0, 2), rng) * level).astype(np.float32)
    if kind == "rain":
        out = 0.2 * _coloured(n, 1.0, rng)
        drop = np.exp(-np.arange(int(0.02 * RATE)) / (0.003 * RATE))
        for at in rng.integers(0, n, int(rng.uniform(200, 800) * seconds)):
            d = drop * rng.standard_normal(drop.size) * rng.uniform(0.05, 0.5)
            out[at: at + d.size] += d[: n - at]
        return out.astype(np.float32)
    if kind == "wind":
        x = rng.standard_normal(n)
        out = np.zeros(n)
        edges = np.linspace(0, n, 9).astype(int)
        centre = rng.uniform(150, 900, 9)
        for k in range(8):  # a band that drifts every half second, swept by overlapping segments
            seg = _band(x[edges[k]: edges[k + 1]], centre[k] * 0.6, centre[k] * 1.6)
            out[edges[k]: edges[k + 1]] = seg
        gust = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 6.3))
        return (out / (np.abs(out).max() + 1e-9) * gust).astype(np.float32)
    if kind == "machine":
        f0 = rng.uniform(20, 70)
        pulses = (np.sin(2 * np.pi * f0 * t) > 0.9).astype(float)
        motor = _band(np.convolve(pulses, rng.standard_normal(64), "same"), 20, 3000)
        hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 6))
        out = motor / (np.abs(motor).max() + 1e-9) + 0.3 * hum + 0.1 * rng.standard_normal(n)
        return (out / np.abs(out).max()).astype(np.float32)
    if kind == "crackle":
        out = 0.15 * _coloured(n, rng.uniform(0, 1), rng)
        clicks = rng.integers(0, n, int(rng.uniform(20, 200) * seconds))
        out[clicks] += rng.uniform(-1, 1, clicks.size)
        return (out / np.abs(out).max()).astype(np.float32)
    raise ValueError(f"unknown noise {kind!r}")


MUSIC = ("melodies", "chords", "band")
NOISES = ("coloured", "rain", "wind", "machine", "crackle")


def _speech(text: str, voice: Voice, rng: Rng, *, tmp: Path, resample: torch.nn.Module, name: str) -> np.ndarray:
    wave = spoken(text, voice, tmp / f"{name}.wav", rate=RATE, resample=resample)
    return wave + 0.003 * _coloured(wave.size, rng.uniform(0, 2), rng) * rng.uniform(0, 1)


def _normalise(wave: np.ndarray, rng: Rng) -> np.ndarray:
    return (wave / (np.abs(wave).max() + 1e-9) * rng.uniform(0.2, 0.9)).astype(np.float32)


def build_sound_set(root: Path, *, per_subset: int = 48, speech_files: int = 144, workers: int = 4) -> Path:
    """Build (once) the sound-types set under ``root`` and return its folder (``root/sound-types-vV-HASH``,
    which holds ``musan/``).

    Args:
        root: parent folder (the dataset cache).
        per_subset: files per music subset; the noise subsets share as many files as all of music.
        speech_files: espeak-ng utterances.
        workers: espeak-ng processes run at once.
    """
    return synthetic_set(root, "sound-types", version=VERSION, params=(per_subset, speech_files, SECONDS),
                         complete=lambda folder: all((folder / "musan" / c).is_dir() for c in MUSAN_CLASSES),
                         write=lambda part: _write_sound_set(part, per_subset=per_subset, speech_files=speech_files,
                                                             workers=workers))


def _write_sound_set(part: Path, *, per_subset: int, speech_files: int, workers: int) -> None:
    executable()  # fail early, with one line, if espeak-ng is missing
    import torchaudio.transforms as T

    resample = T.Resample(22_050, RATE)
    jobs: list[tuple[str, Callable[[], np.ndarray]]] = []
    langs = sorted(WORDS)
    for i in range(speech_files):
        rng = np.random.default_rng([VERSION, 0, i])
        words = WORDS[langs[i % len(langs)]].split()
        text = " ".join(rng.choice(words, size=int(rng.integers(8, 15)), replace=False))
        voice = Voice(f"{langs[i % len(langs)]}+{VARIANTS[i // len(langs) % len(VARIANTS)]}",
                      pitch=int(rng.integers(10, 91)), speed=int(rng.integers(120, 220)))
        jobs.append((f"speech/espeak/speech-{i:04d}.wav",
                     lambda rng=rng, text=text, voice=voice, i=i, tmp=None: _speech(
                         text, voice, rng, tmp=tmp, resample=resample, name=f"s{i}")))
    for k, kind in enumerate(MUSIC):
        for i in range(per_subset):
            jobs.append((f"music/{kind}/{kind}-{i:04d}.wav",
                         lambda kind=kind, rng=np.random.default_rng([VERSION, 1, k, i]): music(kind, rng)))
    for i in range(per_subset * len(MUSIC)):
        kind = NOISES[i % len(NOISES)]
        jobs.append((f"noise/{kind}/{kind}-{i:04d}.wav",
                     lambda kind=kind, rng=np.random.default_rng([VERSION, 2, i]): noise(kind, rng)))
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
        def make(job: tuple[str, Callable[..., np.ndarray]]) -> np.ndarray:
            rel, fn = job
            wave = fn(tmp=Path(tmp)) if rel.startswith("speech/") else fn()
            return _normalise(wave, np.random.default_rng(sum(map(ord, rel))))

        for (rel, _), wave in zip(jobs, pool.map(make, jobs)):
            (part / "musan" / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(part / "musan" / rel), wave, RATE, subtype="PCM_16")


# --- the espeak:radio source recording ---------------------------------------------------------------------


def pluck(midi: float, seconds: float, rng: Rng) -> np.ndarray:
    """A plucked string by Karplus-Strong: a burst of noise in a delay line of one period, averaged each pass
    (written here: no packaged synthesiser does it without a system dependency)."""
    period = max(int(RATE / _hz(midi)), 2)
    n = int(seconds * RATE)
    line = rng.uniform(-1, 1, period)
    out = np.empty(n, np.float32)
    decay = rng.uniform(0.990, 0.998)
    for start in range(0, n, period):  # one period at a time: each pass is the previous one, smoothed
        seg = line[: n - start]
        out[start: start + seg.size] = seg
        line = decay * 0.5 * (line + np.roll(line, -1))
    return out


def jingle(rng: Rng, seconds: float) -> np.ndarray:
    """A plucked-string jingle: strummed chords and an arpeggio in a random key, with brushed noise on the beat."""
    track = np.zeros(int(seconds * RATE), np.float32)
    root = int(rng.integers(45, 57))
    beat = 60 / rng.uniform(90, 140)
    at = 0.0
    while at < seconds:
        chord = [root + c for c in ((0, 4, 7, 12), (5, 9, 12, 17), (7, 11, 14, 19), (-3, 0, 4, 9))[
            int(rng.integers(4))]]
        for j, m in enumerate(chord):  # a strum: strings 15 ms apart
            _add(track, 0.3 * pluck(m, 2 * beat, rng), at + 0.015 * j)
        for j in range(4):  # an arpeggio above it
            _add(track, 0.25 * pluck(chord[j % len(chord)] + 12, beat, rng), at + j * beat / 2 + beat)
        brush = rng.standard_normal(int(0.08 * RATE)) * np.exp(-np.arange(int(0.08 * RATE)) / (0.02 * RATE))
        for j in range(4):
            _add(track, 0.08 * brush.astype(np.float32), at + j * beat)
        at += 4 * beat
    return track


def street(rng: Rng, seconds: float) -> np.ndarray:
    """An outside-broadcast bed: traffic rumble (low brown noise, swelling as cars pass) and a distant hiss."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    swell = 0.4 + 0.6 * np.clip(np.sin(2 * np.pi * t / rng.uniform(4, 9)), 0, None) ** 2
    return (0.7 * _coloured(n, 2.0, rng) * swell + 0.1 * _coloured(n, 0.5, rng)).astype(np.float32)


def radio_recording() -> Path:
    """The cached ``espeak:radio`` recording (made on first use; see the module's docstring)."""
    key = hashlib.sha256(repr((VERSION, PROSE, PROSE_VOICES)).encode()).hexdigest()[:10]
    target = cache_dir("sources") / f"espeak-radio-{key}.wav"
    if target.is_file():
        return target
    import torchaudio.transforms as T

    resample = T.Resample(22_050, RATE)
    rng = np.random.default_rng([VERSION, 3])
    paragraphs = [p.strip() + "." for p in PROSE.split(". ") if p.strip()]
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, voice in enumerate(PROSE_VOICES):
            for j in range(0, len(paragraphs), 4):
                wave, rate = sf.read(str(speak(" ".join(paragraphs[j: j + 4]), voice, Path(tmp) / "p.wav")),
                                     dtype="float32")
                wave = resample(torch.from_numpy(wave)).numpy() if rate != RATE else wave
                wave = wave / (np.abs(wave).max() + 1e-9) * 0.6
                if (i + j) % 3 == 1:  # an outside broadcast: the street under the voice
                    wave = wave + 0.15 * street(rng, wave.size / RATE)[: wave.size]
                parts += [wave, np.zeros(RATE // 4, np.float32)]
                if j % 8 == 4 or j + 4 >= len(paragraphs):  # a jingle after every second stretch of talk
                    parts += [0.6 * jingle(rng, rng.uniform(8, 14)), np.zeros(RATE // 4, np.float32)]
    with atomic_path(target) as part:
        sf.write(str(part), np.clip(np.concatenate(parts), -1, 1), RATE, format="WAV", subtype="PCM_16")
    return target
