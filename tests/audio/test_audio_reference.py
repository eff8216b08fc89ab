"""The librosa reference pipeline of the audio modality (``aip bench --vs-reference``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from aip import recipe as R
from aip.bench import bench
from modalities.audio import AudioModality
from modalities.audio.reference import LibrosaWindows, front_end
from tests.conftest import ROOT

RATE = 16_000


def recipe(*overrides: str):
    return R.load(ROOT / "recipes" / "spoken-keywords.toml",
                  ["source.uri=synthetic:noise", "source.synthetic_seconds=5", *overrides])


def test_batches_are_log_mels_of_the_students_front_end(tmp_path: Path):
    r = recipe()  # the student's kwargs: 40 mels every 16 ms
    batches = AudioModality().reference_pipeline(r, root=tmp_path, batch_size=4, workers=0, count=8)
    (x, y), (x2, _) = list(batches)
    frames = 1 + RATE // round(RATE * 0.016)
    assert x.shape == (4, 1, 40, frames) and y.tolist() == [0] * 4
    assert torch.isfinite(x).all() and not torch.equal(x[0], x[1]) and not torch.equal(x, x2)
    assert sf.info(str(tmp_path / "source.wav")).frames == 5 * RATE
    assert front_end({}, RATE) == {"sr": RATE, "n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 64,
                                   "fmin": 60.0, "fmax": 7800.0}


def test_each_augmentation_acts(tmp_path: Path):
    """With everything off an item is the log-mel of the file's window itself; the switches change it."""
    t = np.arange(3 * RATE) / RATE
    path = tmp_path / "tone.wav"
    sf.write(str(path), (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), RATE, subtype="FLOAT")
    off = ["augment.speed=[1.0, 1.0]", "augment.shift=0.0", "augment.isolate_p=0.0", "augment.reverb_p=0.0",
           "augment.gain_db=[0.0, 0.0]", "augment.noise_p=0.0", "augment.time_masks=0", "augment.freq_masks=0"]
    plain = LibrosaWindows(path, frames=t.size, recipe=recipe(*off), count=2)
    a, b = plain[0][0], plain[1][0]
    peak = int(a[0].mean(1).argmax())
    assert int(b[0].mean(1).argmax()) == peak  # a steady tone: every window alike
    assert torch.allclose(a[0, peak, 2:-2], b[0, peak, 2:-2], atol=0.05)
    slow = LibrosaWindows(path, frames=t.size, recipe=recipe(*off[1:], "augment.speed=[0.8, 0.8]"), count=1)[0][0]
    assert int(slow[0].mean(1).argmax()) < peak  # slowed down: the tone's pitch drops
    masked = LibrosaWindows(path, frames=t.size, recipe=recipe(*off[:-1], "augment.freq_masks=2",
                                                               "augment.freq_mask=0.5"), count=1)
    torch.manual_seed(1)
    assert (masked[0][0] == masked[0][0].min()).any()
    noisy = LibrosaWindows(path, frames=t.size, recipe=recipe(*[o for o in off if "noise" not in o],
                                                              "augment.noise_p=1.0", "augment.snr_db=[0.0, 0.0]"),
                           count=1)[0][0]
    assert noisy[0, :5].mean() > a[0, :5].mean() + 3  # noise fills the low bands the tone leaves empty


def test_bench_reports_the_ratio(tmp_path: Path):
    small = recipe("train.batch_size=8", "train.view_pool=1")
    result = bench(small, device=torch.device("cpu"), steps=1, warmup=0, vs_reference=True, workers=0,
                   num_classes=12)
    assert result.reference["views_per_second"] > 0
    assert "aip data / reference" in result.table()


@pytest.mark.parametrize("workers", [2])
def test_runs_in_worker_processes_with_their_own_draws(tmp_path: Path, workers: int):
    batches = AudioModality().reference_pipeline(recipe(), root=tmp_path, batch_size=2, workers=workers, count=4)
    x = torch.cat([b[0] for b in batches])
    assert x.shape[0] == 4 and len({tuple(v.flatten()[:50].tolist()) for v in x}) == 4
