"""Speech synthesised offline with espeak-ng: the ``espeak:prose`` source recording.

``espeak:prose`` is :data:`PROSE` (a short original description of a harbour town, written for aip and
released with it; it contains none of the 35 SpeechCommands words) read by several espeak-ng voices at
different pitches and speeds, joined into one recording and cached as a WAV. It lets the audio modality run
end to end without a network.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from aip.cache import cache_dir
from aip.errors import AipError
from aip.files import atomic_path

PROSE = (
    "The old harbour lay quiet beneath a pale morning sky. Fishermen carried their nets across the wet stones, "
    "and gulls circled above the masts, calling to each other in sharp, bright voices. A baker opened the "
    "shutters of his small shop, and the smell of warm bread drifted along the street. Children ran past the "
    "fountain, laughing, their shoes slapping against the cobbles. At the market, farmers arranged baskets of "
    "apples, pears, cabbages and beans, and a woman with a green shawl sold honey from a wooden cart. The church "
    "bell rang the hour while merchants argued about the price of wool and salt. Beyond the town, the fields "
    "rolled gently toward the hills, where shepherds watched their flocks among the heather. A narrow river "
    "wandered through the valley, turning the wheel of a mill that had ground grain for many generations. In "
    "the afternoon the wind changed, and grey clouds gathered over the sea. Sailors hurried to secure their "
    "boats, tying ropes and folding sails with practised hands. Rain began to fall softly at first, then harder, "
    "drumming against the roofs and filling the gutters. People gathered in the tavern near the quay, where a "
    "fire burned in the great stone hearth. They spoke of journeys across distant oceans, of storms survived and "
    "harbours reached, of friends who never returned. An elderly captain described islands where strange "
    "flowers bloomed all year and the water shone like glass. By evening the storm had passed. The sky cleared, "
    "and the first stars appeared above the lighthouse, whose lamp swept its patient beam across the dark "
    "water, guiding travellers safely toward the shore."
)


@dataclass(frozen=True)
class Voice:
    """One espeak-ng rendering: voice name (``LANG+VARIANT``), pitch (0-99), speed (words per minute)."""

    name: str
    pitch: int = 50
    speed: int = 175
    amplitude: int = 100

    def args(self) -> list[str]:
        return ["-v", self.name, "-p", str(self.pitch), "-s", str(self.speed), "-a", str(self.amplitude)]


#: the readers of ``espeak:prose``
PROSE_VOICES = (
    Voice("en-us+m3", 45, 165), Voice("en-gb+f2", 70, 150), Voice("en-gb-scotland+m1", 35, 190),
    Voice("en-029+f4", 80, 140), Voice("en-gb-x-rp+klatt", 55, 175),
)


def executable() -> str:
    """Path of ``espeak-ng``.

    Raises:
        AipError: espeak-ng is not installed.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise AipError("espeak-ng is not installed (it synthesises the offline speech); install it with "
                       "`apt-get install espeak-ng` (or `make system`), or give source.uri a recording")
    return exe


def speak(text: str, voice: Voice, path: Path) -> Path:
    """Render ``text`` with ``voice`` into the WAV file ``path`` (espeak-ng's native 22,050 Hz)."""
    cmd = [executable(), *voice.args(), "-w", str(path), text]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not path.is_file():
        first = (result.stderr.strip().splitlines() or ["no output"])[0]
        raise AipError(f"espeak-ng failed for voice {voice.name!r} ({first}); check `espeak-ng --voices=en`")
    return path


def spoken(text: str, voice: Voice, path: Path, *, rate: int, resample: Callable[[torch.Tensor], torch.Tensor],
           margin: float = 0.0) -> np.ndarray:
    """``text`` read by ``voice`` as a float32 waveform at ``rate`` (``resample`` converts from espeak-ng's
    22,050 Hz), its leading and trailing silence trimmed to ``margin`` seconds; the WAV file ``path`` is removed."""
    wave, native = sf.read(str(speak(text, voice, path)), dtype="float32")
    path.unlink()
    wave = resample(torch.from_numpy(wave)).numpy() if native != rate else wave
    nz = np.flatnonzero(np.abs(wave) > 1e-3)
    pad = round(margin * rate)
    return wave[max(nz[0] - pad, 0): nz[-1] + 1 + pad] if nz.size else wave


def prose_recording() -> Path:
    """The cached ``espeak:prose`` recording (synthesised on first use): :data:`PROSE` read by each voice of
    :data:`PROSE_VOICES`, joined with short pauses."""
    key = hashlib.sha256(repr((PROSE, PROSE_VOICES)).encode()).hexdigest()[:10]
    target = cache_dir("sources") / f"espeak-prose-{key}.wav"
    if target.is_file():
        return target
    parts, rate = [], 22_050
    with tempfile.TemporaryDirectory() as tmp:
        for i, voice in enumerate(PROSE_VOICES):
            wave, rate = sf.read(str(speak(PROSE, voice, Path(tmp) / f"{i}.wav")), dtype="float32")
            parts += [wave, np.zeros(rate // 3, np.float32)]
    with atomic_path(target) as part:
        sf.write(str(part), np.concatenate(parts), rate, format="WAV", subtype="PCM_16")
    return target
