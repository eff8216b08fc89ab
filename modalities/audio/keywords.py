"""The offline ``spoken-keywords`` set: the 35 Speech Commands words spoken by espeak-ng voices, written in
Speech Commands' own layout (``WORD/SPEAKER_nohash_N.wav``, ``validation_list.txt``, ``testing_list.txt``,
``_background_noise_/``), so it is read by the very same loader and 12-class protocol.

It is made hard on purpose: many voices (accent x voice variant), each clip at a random pitch, speed and
loudness, placed at a random time in its 1-s window, with background noise mixed in at a random SNR; and
the split is by voice, as Speech Commands splits by speaker, so the test voices are never heard in
training. Built once (a few espeak-ng calls run in parallel) and cached.
"""

from __future__ import annotations

import hashlib
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from aip.cache import synthetic_set
from modalities.audio.espeak import Voice, executable, speak
from modalities.audio.labels import KEYWORDS, NOISE_DIR, UNKNOWN_WORDS

LANGUAGES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
             "en-us-nyc")
VARIANTS = ("m1", "f1", "m3", "f2", "m5", "f3", "m7", "f4", "klatt", "f5", "croak", "m2", "whisper", "m4", "klatt3")
RATE = 16_000
VERSION = 1


def voices(n: int) -> list[str]:
    """``n`` distinct espeak-ng voices, accents and variants interleaved (8 x 15 combinations)."""
    return [f"{LANGUAGES[i % len(LANGUAGES)]}+{VARIANTS[i % len(VARIANTS)]}" for i in range(n)]


def split_of(i: int) -> str:
    """Voice ``i``'s split: every 4th voice is a test voice, every 8th (offset 1) a validation voice."""
    return "testing" if i % 4 == 3 else "validation" if i % 8 == 1 else "training"


def noise_files(rate: int, seconds: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = rate * seconds
    f = np.fft.rfftfreq(n, 1 / rate).clip(20, None)
    out = {}
    for name, beta in (("white_noise", 0.0), ("pink_noise", 1.0), ("brown_noise", 2.0)):
        x = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * f ** (-beta / 2), n)
        out[name] = x / np.abs(x).max() * 0.5
    t = np.arange(n) / rate
    hum = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 8))
    out["hum"] = (hum / np.abs(hum).max() * 0.3 + rng.standard_normal(n) * 0.02)
    return {k: v.astype(np.float32) for k, v in out.items()}


def _clip(word: str, voice_i: int, voice: str, rep: int, *, tmp: Path, noise: list[np.ndarray],
          resample: torch.nn.Module) -> np.ndarray:
    """One 1-s clip: espeak-ng at a random pitch/speed/loudness, random placement, background noise."""
    rng = np.random.default_rng([voice_i, rep, sum(map(ord, word)), len(word)])
    v = Voice(voice, pitch=int(rng.integers(10, 91)), speed=int(rng.integers(110, 241)))
    path = speak(word, v, tmp / f"{word}-{voice_i}-{rep}.wav")
    wave, rate = sf.read(str(path), dtype="float32")
    path.unlink()
    wave = resample(torch.from_numpy(wave)).numpy() if rate != RATE else wave
    nz = np.flatnonzero(np.abs(wave) > 1e-3)  # trim espeak's leading/trailing silence
    wave = wave[nz[0]: nz[-1] + 1] if nz.size else wave
    wave = wave[:RATE] / max(np.abs(wave).max(), 1e-6) * rng.uniform(0.1, 0.9)
    clip = np.zeros(RATE, np.float32)
    at = int(rng.integers(0, RATE - wave.size + 1))
    clip[at: at + wave.size] = wave
    bg = noise[int(rng.integers(len(noise)))]
    start = int(rng.integers(0, bg.size - RATE))
    bg = bg[start: start + RATE]
    snr = rng.uniform(5, 35)
    rms = lambda a: float(np.sqrt(np.mean(a**2)) + 1e-9)  # noqa: E731
    clip += bg * (rms(wave) / rms(bg)) / 10 ** (snr / 20)
    return np.clip(clip, -1, 1)


def build_keyword_set(root: Path, *, n_voices: int = 24, reps: int = 5,
                      words: tuple[str, ...] = KEYWORDS + UNKNOWN_WORDS, workers: int = 4) -> Path:
    """Build (once) the espeak-ng keyword set under ``root`` and return its folder.

    Args:
        root: parent folder; the set goes to ``root/spoken-keywords-vV-HASH`` (HASH names the arguments).
        n_voices: voices (a quarter of them are test voices).
        reps: clips per word and voice, each with its own pitch, speed, loudness, placement and noise.
        words: the words to speak (Speech Commands' 35 by default).
        workers: espeak-ng processes run at once.
    """
    def write(part: Path) -> None:
        executable()  # fail early, with one line, if espeak-ng is missing
        noise = noise_files(RATE, 20, seed=VERSION)
        import torchaudio.transforms as T

        resample = T.Resample(22_050, RATE)
        names = voices(n_voices)
        jobs = [(w, i, v, r) for w in words for i, v in enumerate(names) for r in range(reps)]
        lists: dict[str, list[str]] = {"testing": [], "validation": []}
        (part / NOISE_DIR).mkdir()
        for name, x in noise.items():
            sf.write(str(part / NOISE_DIR / f"{name}.wav"), x, RATE, subtype="PCM_16")
        with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
            clips = pool.map(lambda j: _clip(*j, tmp=Path(tmp), noise=list(noise.values()), resample=resample),
                             jobs)
            for (w, i, v, r), clip in zip(jobs, clips):
                speaker = hashlib.sha256(v.encode()).hexdigest()[:8]
                rel = f"{w}/{speaker}_nohash_{r}.wav"
                (part / w).mkdir(exist_ok=True)
                sf.write(str(part / rel), clip, RATE, subtype="PCM_16")
                if split_of(i) in lists:
                    lists[split_of(i)].append(rel)
        for name, rels in lists.items():
            (part / f"{name}_list.txt").write_text("".join(f"{r}\n" for r in rels))

    return synthetic_set(root, "spoken-keywords", version=VERSION, params=(n_voices, reps, words),
                         complete=lambda folder: (folder / "testing_list.txt").is_file(), write=write)
