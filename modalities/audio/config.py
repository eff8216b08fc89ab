"""The audio modality's recipe sections: ``[source]`` (the one long recording and how windows are cut from it)
and ``[augment]`` (the per-sample augmentation applied on the device to every batch of windows)."""

from __future__ import annotations

from dataclasses import dataclass

from aip.schema import check, check_beta, check_probability


@dataclass(frozen=True)
class AudioSourceConfig:
    """The single recording and the windows cut from it.

    ``uri``: a file path (WAV/FLAC/OGG/MP3 through soundfile, other containers through PyAV), an ``http(s)``
    URL (downloaded once into the cache), ``espeak:prose`` (a fixed English prose text, read by several
    espeak-ng voices and cached; it contains none of the SpeechCommands words), ``espeak:radio`` (that text
    as a radio programme, with plucked-string jingles and a street bed: :mod:`modalities.audio.sounds`),
    ``synthetic:noise``
    (coloured noise) or ``dataset:train`` (the labelled training clips, labels unused: the upper bound;
    ``train_items`` > 0 keeps just that many clips, chosen reproducibly from ``seed``, for the "one recording
    against N clips" comparison).
    The recording is mixed down to mono and resampled once to ``rate``; at most ``max_seconds`` of it are
    kept (0 keeps all). It is then scaled to an integrated loudness of ``loudness`` LUFS (ITU-R BS.1770, as
    ``torchaudio.functional.loudness`` measures it; -20 is about where the offline espeak recordings are), so
    a quiet or a loud recording gives the views the recipes were tuned with; 0 keeps its own level.
    ``synthetic:noise`` keeps the levels it is made with, and ``dataset:train`` the clips' own.

    ``test_windows`` (not about the source: the test protocol for the labelled files, which are cut to the
    same ``window``): 1 evaluates each test file by its centred window; N > 1 by N non-overlapping windows
    spread over the file (a file shorter than N windows is looped to N windows) whose softmax is averaged,
    the protocol for the long recordings of MUSAN, Voxforge and LibriSpeech.
    """

    uri: str = "espeak:prose"
    rate: int = 16_000
    window: float = 1.0
    max_seconds: float = 3600.0
    synthetic_seconds: float = 120.0
    seed: int = 0
    test_windows: int = 1
    train_items: int = 0
    loudness: float = -20.0

    def __post_init__(self) -> None:
        check(4000 <= self.rate <= 96_000, "source.rate", "must be a sample rate in Hz in [4000, 96000]")
        check(0.05 <= self.window <= 30, "source.window", "is the window length in seconds, in [0.05, 30]")
        check(self.max_seconds == 0 or self.max_seconds >= self.window, "source.max_seconds",
              "must be 0 (keep the whole recording) or at least source.window")
        check(self.synthetic_seconds >= self.window, "source.synthetic_seconds", "must be at least source.window")
        check(self.train_items >= 0, "source.train_items", "must be >= 0 (0 uses every training clip)")
        check(self.train_items == 0 or self.uri == "dataset:train", "source.train_items",
              "applies only to source.uri = 'dataset:train'; remove it or set 0")
        check(self.loudness == 0 or -60 <= self.loudness <= -5, "source.loudness",
              "is the recording's loudness in LUFS, in [-60, -5], or 0 to keep its own level")
        check(1 <= self.test_windows <= 64, "source.test_windows", "is the number of windows per test file, 1 to 64")

    @property
    def samples(self) -> int:
        """Window length in samples."""
        return round(self.window * self.rate)


@dataclass(frozen=True)
class AudioAugmentConfig:
    """Per-sample waveform augmentation, all batched on the device; teacher and student hear the result.

    In order: ``speed`` (resampling factor range: changes tempo and pitch together, as Kaldi's speed
    perturbation) with a random ``shift`` of up to that many seconds; with probability ``isolate_p`` only one
    stretch of ``isolate`` seconds is kept and the rest silenced (not in the paper: an isolated-word view, as
    keyword clips hold one short word in a quiet second); ``reverb_p`` (convolution with a synthetic
    exponentially decaying impulse response, decay time ``rt60`` seconds); ``gain_db`` (uniform gain in dB);
    additive coloured noise with probability ``noise_p`` at an SNR drawn from ``snr_db``; SpecAugment-style
    masks (``time_masks`` zeroed stretches of up to ``time_mask`` seconds; ``freq_masks`` notched bands of up
    to ``freq_mask`` of the mel range, cut from the waveform's spectrum); and CutMix along time: with
    probability ``cutmix_p`` a stretch of ``1 - lambda`` of the window, lambda ~ Beta(``cutmix``, ``cutmix``),
    comes from another window of the batch; ``mixup`` > 0 then blends every window with another (MixUp).
    """

    gain_db: tuple[float, float] = (-12.0, 6.0)
    speed: tuple[float, float] = (0.8, 1.25)
    shift: float = 0.1
    isolate_p: float = 0.0
    isolate: tuple[float, float] = (0.3, 0.8)
    reverb_p: float = 0.2
    rt60: tuple[float, float] = (0.1, 0.6)
    noise_p: float = 0.5
    snr_db: tuple[float, float] = (5.0, 30.0)
    time_masks: int = 2
    time_mask: float = 0.05
    freq_masks: int = 2
    freq_mask: float = 0.1
    cutmix: float = 1.0
    cutmix_p: float = 0.5
    mixup: float = 0.0

    def __post_init__(self) -> None:
        check(self.gain_db[0] <= self.gain_db[1], "augment.gain_db", "must satisfy min <= max")
        check(0 < self.speed[0] <= self.speed[1] <= 4, "augment.speed", "must satisfy 0 < min <= max <= 4")
        check(0 < self.isolate[0] <= self.isolate[1], "augment.isolate",
              "is a range of seconds, 0 < min <= max (at most source.window is used)")
        check(self.shift >= 0, "augment.shift", "is a time shift in seconds, >= 0")
        check(0 < self.rt60[0] <= self.rt60[1] <= 5, "augment.rt60", "must satisfy 0 < min <= max <= 5 seconds")
        check(self.snr_db[0] <= self.snr_db[1], "augment.snr_db", "must satisfy min <= max")
        for key in ("isolate_p", "reverb_p", "noise_p", "cutmix_p"):
            check_probability(getattr(self, key), f"augment.{key}")
        check(self.time_masks >= 0 and self.freq_masks >= 0, "augment.time_masks",
              "time_masks and freq_masks are counts, >= 0")
        check(0 <= self.time_mask <= 1, "augment.time_mask", "is the longest time mask in seconds, in [0, 1]")
        check(0 <= self.freq_mask <= 1, "augment.freq_mask", "is the widest band as a fraction of the mel range")
        check_beta(self.cutmix, "augment.cutmix")
        check_beta(self.mixup, "augment.mixup", what="mixup")
