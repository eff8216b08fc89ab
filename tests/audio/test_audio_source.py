"""Audio source: decoding (soundfile, PyAV), resampling, the one-gather window sampler and its errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from aip import graphs
from aip.errors import AipError
from aip.graphs import forbid_host_reads
from aip.sampling import DatasetSampler
from modalities.audio import AudioModality
from modalities.audio.config import AudioSourceConfig
from modalities.audio.decode import read_audio
from modalities.audio.source import WindowSampler, coloured_noise, download, load_recording


def tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_formats_decode_mono_and_resample(tmp_path: Path, fmt: str):
    assert fmt in sf.available_formats()  # the soundfile wheel's libsndfile decodes all four
    path = tmp_path / f"a.{fmt.lower()}"
    stereo = np.stack([tone(2.0, 44_100), tone(2.0, 44_100)], 1)
    sf.write(str(path), stereo, 44_100)
    wave = read_audio(path, rate=16_000)
    assert wave.dim() == 1 and abs(wave.numel() - 32_000) < 1200  # MP3 adds encoder padding
    spectrum = torch.fft.rfft(wave[4000:20000]).abs()
    assert abs(int(spectrum.argmax()) - 440) <= 2  # 16000 samples at 16 kHz: 1 Hz bins


def test_pyav_decodes_what_libsndfile_cannot(tmp_path: Path):
    import av

    path = tmp_path / "a.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16_000)
        frame = av.AudioFrame.from_ndarray(tone(1.5, 16_000)[None], format="fltp", layout="mono")
        frame.sample_rate = 16_000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    wave = read_audio(path, rate=16_000)
    assert 20_000 < wave.numel() < 28_000 and float(wave.abs().max()) > 0.3


def test_bad_files_are_one_line_errors(tmp_path: Path):
    with pytest.raises(AipError, match="does not exist"):
        read_audio(tmp_path / "missing.wav", rate=16_000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wave file" * 10)
    with pytest.raises(AipError, match="not a readable audio file"):
        read_audio(bad, rate=16_000)
    short = tmp_path / "short.wav"
    sf.write(str(short), tone(0.5, 16_000), 16_000)
    with pytest.raises(AipError, match="shorter than one window"):
        load_recording(AudioSourceConfig(uri=str(short)))
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(32_000, np.float32), 16_000)
    with pytest.raises(AipError, match="is silent"):
        load_recording(AudioSourceConfig(uri=str(silent)))
    with pytest.raises(AipError, match="known: synthetic:noise"):
        load_recording(AudioSourceConfig(uri="synthetic:pink"))


def test_download_is_cached_and_failures_are_one_line(tmp_path: Path, isolated_cache: Path):
    src = tmp_path / "rec.wav"
    sf.write(str(src), tone(2.0, 16_000), 16_000)
    first = download(src.as_uri())
    assert first.is_file() and first.parent == isolated_cache / "sources"
    src.unlink()
    assert download(src.as_uri()) == first  # reused, not fetched again
    with pytest.raises(AipError, match="could not download"):
        download((tmp_path / "nothing.wav").as_uri())
    assert not list((isolated_cache / "sources").glob("*.part"))


def test_sampler_shape_range_and_determinism():
    wave = torch.arange(50_000, dtype=torch.float32)
    sampler = WindowSampler(wave, samples=16_000, device=torch.device("cpu"))
    torch.manual_seed(0)
    a = sampler.sample(8)
    torch.manual_seed(0)
    b = sampler.sample(8)
    assert a.shape == (8, 1, 16_000) and torch.equal(a, b)
    diffs = a[:, 0, 1:] - a[:, 0, :-1]
    assert torch.all(diffs == 1)  # contiguous windows of the recording
    assert a.min() >= 0 and a.max() <= 49_999
    assert len(set(a[:, 0, 0].tolist())) > 1  # random starts
    tail = WindowSampler(torch.arange(16_003.0), samples=16_000, device=torch.device("cpu")).sample(64)
    assert set(tail[:, 0, 0].tolist()) == {0.0, 1.0, 2.0, 3.0}  # every start, the last one included


def test_window_sampler_is_capturable_and_the_dataset_sampler_is_not():
    sampler = WindowSampler(torch.randn(40_000), samples=16_000, device=torch.device("cpu"))
    with forbid_host_reads():
        x = sampler.sample(16)
    assert x.shape == (16, 1, 16_000) and graphs.capturable(sampler)
    assert not graphs.capturable(DatasetSampler([], device=torch.device("cpu")))


def test_the_augmenter_is_one_capturable_path_on_every_device():
    from aip import recipe as recipes
    from tests.conftest import ROOT

    recipe = recipes.load(ROOT / "recipes" / "spoken-keywords.toml", [])
    augmenter = AudioModality().augmenter(recipe, device=torch.device("cpu"))
    assert augmenter.capturable  # the same code a CUDA graph captures runs on the CPU
    with graphs.forbid_host_reads():
        out = augmenter(torch.randn(8, 1, 16_000) * 0.1)
    assert out.shape == (8, 1, 16_000) and torch.isfinite(out).all()


def test_synthetic_noise_and_max_seconds():
    noise = coloured_noise(10, rate=8000, seed=0)
    assert noise.numel() == 80_000 and torch.isfinite(noise).all()
    per_second = noise.view(10, 8000).std(1)
    assert per_second.max() / per_second.min() > 2  # the level changes from second to second
    cfg = AudioSourceConfig(uri="synthetic:noise", rate=8000, synthetic_seconds=10, max_seconds=4)
    assert load_recording(cfg).numel() == 32_000


def test_a_recording_is_brought_to_the_recipes_loudness(tmp_path: Path):
    """A quiet or a loud recording of the same sound gives the same source (so the same views), at
    ``source.loudness`` LUFS; 0 keeps the file's level; synthetic noise keeps the levels it is made with."""
    import torchaudio.functional as AF

    rng = np.random.default_rng(0)
    t = np.arange(5 * 16_000) / 16_000
    sound = (np.sin(2 * np.pi * 300 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0) + 0.05 * rng.standard_normal(t.size))
    loaded = {}
    for name, scale in (("quiet", 1e-3), ("plain", 0.3), ("loud", 20.0)):
        sf.write(str(tmp_path / f"{name}.wav"), (sound * scale).astype(np.float32), 16_000, subtype="FLOAT")
        loaded[name] = load_recording(AudioSourceConfig(uri=str(tmp_path / f"{name}.wav")))
        assert float(AF.loudness(loaded[name][None], 16_000)) == pytest.approx(-20.0, abs=0.05)
        assert float(loaded[name].abs().max()) < 1  # measured right, though the file went past full scale
    torch.testing.assert_close(loaded["quiet"], loaded["plain"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loaded["loud"], loaded["plain"], rtol=1e-4, atol=1e-5)
    kept = load_recording(AudioSourceConfig(uri=str(tmp_path / "quiet.wav"), loudness=0))
    torch.testing.assert_close(kept, torch.from_numpy((sound * 1e-3).astype(np.float32)))
    louder = load_recording(AudioSourceConfig(uri=str(tmp_path / "quiet.wav"), loudness=-14.0))
    torch.testing.assert_close(louder, loaded["plain"] * 10 ** (6 / 20), rtol=1e-4, atol=1e-5)
    square = np.sign(np.sin(2 * np.pi * 3000 * t)).astype(np.float32)  # full scale, K-weighting lifts it 4 dB
    sf.write(str(tmp_path / "square.wav"), square, 16_000, subtype="FLOAT")
    levelled = load_recording(AudioSourceConfig(uri=str(tmp_path / "square.wav")))
    assert float(AF.loudness((levelled * 0.1)[None], 16_000)) == pytest.approx(-40.0, abs=0.05)  # no clamping
    noise = AudioSourceConfig(uri="synthetic:noise", synthetic_seconds=3)
    assert torch.equal(load_recording(noise), load_recording(replace(noise, loudness=0)))


def test_a_recording_shorter_than_a_loudness_block_is_levelled_by_its_rms(tmp_path: Path):
    """BS.1770 measures 400 ms blocks: a 0.3 s source (for 0.1 s windows) has none, its RMS level stands in."""
    sf.write(str(tmp_path / "blip.wav"), tone(0.3, 16_000) * 1e-3, 16_000, subtype="FLOAT")
    wave = load_recording(AudioSourceConfig(uri=str(tmp_path / "blip.wav"), window=0.1))
    assert 20 * np.log10(float(wave.pow(2).mean().sqrt())) == pytest.approx(-20.0, abs=0.1)


def test_a_constant_offset_is_silence_and_loudness_is_checked(tmp_path: Path):
    sf.write(str(tmp_path / "offset.wav"), np.full(32_000, 0.5, np.float32), 16_000)
    with pytest.raises(AipError, match="offset.wav is silent"):
        load_recording(AudioSourceConfig(uri=str(tmp_path / "offset.wav")))
    with pytest.raises(AipError, match=r"source.loudness.*LUFS"):
        AudioSourceConfig(loudness=3.0)
