"""Reading audio files: soundfile (libsndfile: WAV, FLAC, OGG/Vorbis/Opus, MP3 and more) first, PyAV (FFmpeg's
decoders: M4A/AAC, WebM, video soundtracks) for anything libsndfile cannot open; one resampling to the rate
the recipe asks for (``torchaudio.functional.resample``). ``torchaudio.load`` is not used: it needs
torchcodec and a system FFmpeg."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from aip.errors import AipError
from aip.files import regular_file


def _read_av(path: Path) -> tuple[np.ndarray, int]:
    """Decode with PyAV: ``(frames, channels)`` float32 and the native rate."""
    from aip.extras import require

    require("av", extra="audio", what=f"decoding {path.suffix or 'this'} audio files")
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AipError(f"{path} has no audio stream; give a WAV, FLAC, OGG or MP3 recording")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp")
            chunks = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())  # (channels, n)
            rate = stream.rate or stream.codec_context.sample_rate
    except AipError:
        raise
    except Exception as e:  # PyAV raises its own error tree (av.error.*), all user-fixable here
        raise AipError(f"{path} is not a readable audio file ({type(e).__name__}: {e}); "
                       "convert it to WAV or FLAC") from None
    if not chunks:
        raise AipError(f"{path} holds no audio samples; give a non-empty recording")
    return np.concatenate(chunks, axis=1).T, int(rate)


def read_audio(path: str | Path, *, rate: int, what: str = "audio file") -> torch.Tensor:
    """The recording at ``path`` as a mono float32 waveform ``(samples,)`` at ``rate`` Hz.

    Raises:
        AipError: the file is missing, cannot be decoded, or holds no samples.
    """
    p = regular_file(path, what=what, fix="check the path (or give an http(s) URL)")  # never opens a FIFO
    try:
        data, native = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        data, native = _read_av(p)
    if data.size == 0:
        raise AipError(f"{what} {p} holds no audio samples; give a non-empty recording")
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1), dtype=np.float32))
    if not torch.isfinite(wave).all():
        raise AipError(f"{what} {p} contains NaN or infinite samples; re-export it")
    return resample(wave, native, rate)


def resample(wave: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """``wave`` (..., samples) from ``orig`` Hz to ``new`` Hz (band-limited sinc interpolation)."""
    if orig == new:
        return wave
    import torchaudio.functional as AF

    return AF.resample(wave, orig, new)


def write_wav(path: Path, wave: torch.Tensor, *, rate: int) -> Path:
    """Write a mono waveform as 16-bit PCM WAV, scaled down only if it would clip."""
    x = wave.detach().float().cpu().flatten()
    peak = float(x.abs().max()) if x.numel() else 0.0
    if peak > 1.0:
        x = x / peak
    sf.write(str(path), x.numpy(), rate, subtype="PCM_16")
    return path
