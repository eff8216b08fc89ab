"""Files the modalities write for later runs (unpacked datasets, synthesized recordings, video indexes) are
written atomically through aip.files: complete or absent, never half-written, no temporary left behind."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from aip.errors import AipError
from modalities.image import datasets as image_datasets


def test_fashion_mnist_idx_files_are_unpacked_whole(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for file in image_datasets._FASHION_FILES:
        (raw / f"{file}.gz").write_bytes(gzip.compress(file.encode() * 100))
    image_datasets._stage_fashion_mnist(raw)
    for file in image_datasets._FASHION_FILES:
        assert (raw / file).read_bytes() == file.encode() * 100
    assert sorted(p.name for p in raw.iterdir() if not p.name.endswith(".gz")) == sorted(image_datasets._FASHION_FILES)


def test_a_broken_archive_leaves_nothing_behind(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    first = image_datasets._FASHION_FILES[0]
    (raw / f"{first}.gz").write_bytes(gzip.compress(b"x" * 10_000)[:-20])  # truncated
    with pytest.raises(AipError, match="could not unpack"):
        image_datasets._stage_fashion_mnist(raw)
    assert [p.name for p in raw.iterdir()] == [f"{first}.gz"]


def test_the_video_readability_index_is_written_once(tmp_path, isolated_cache):
    from modalities.video.datasets import readable

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    assert readable([bad], where="test") == [False]
    (index,) = (isolated_cache / "video-index").iterdir()
    assert list(json.loads(index.read_text())) == [str(bad)]
    assert [p.name for p in index.parent.iterdir()] == [index.name]  # no temporary left


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_the_prose_recording_is_a_whole_wav_in_the_cache(isolated_cache, monkeypatch):
    import soundfile as sf

    from modalities.audio import espeak

    monkeypatch.setattr(espeak, "PROSE_VOICES", espeak.PROSE_VOICES[:1])
    monkeypatch.setattr(espeak, "PROSE", "One short line.")
    path = espeak.prose_recording()
    wave, rate = sf.read(str(path))
    assert len(wave) > rate // 4 and [p.name for p in path.parent.iterdir()] == [path.name]
