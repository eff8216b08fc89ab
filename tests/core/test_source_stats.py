"""Measures of the source datum (aip source-stats): image and audio measures, the teacher's, the command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from aip.modality import SourceMeasures
from aip.registry import load_modality
from aip.source_stats import source_stats, teacher_measures


def test_teacher_measures_on_hand_made_logits() -> None:
    # 4 views, 4 classes: two one-hot-like views of class 0, two uniform views
    logits = torch.tensor([[50.0, 0, 0, 0], [50.0, 0, 0, 0], [0.0, 0, 0, 0], [0.0, 0, 0, 0]])
    m = teacher_measures(logits)
    assert m["teacher_entropy_bits"] == pytest.approx((0 + 0 + 2 + 2) / 4, abs=1e-6)
    # mean prediction: class 0 gets (1 + 1 + .25 + .25) / 4 = 0.625, the others 0.125 each
    expected = -(0.625 * math.log2(0.625) + 3 * 0.125 * math.log2(0.125))
    assert m["teacher_marginal_entropy_bits"] == pytest.approx(expected, abs=1e-6)
    assert m["teacher_class_coverage"] == 0.25  # argmax of every view is class 0
    assert m["teacher_max_entropy_bits"] == 2.0


def test_image_measures_order_flat_photo_and_noise() -> None:
    from modalities.image import measures as im

    flat = np.full((512, 512, 3), 128, np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    assert im.pixel_entropy(flat) == 0.0
    assert im.pixel_entropy(noise) == pytest.approx(8.0, abs=0.01)
    assert im.patch_diversity(flat) == 0.0 and im.patch_diversity(noise) > 0.3
    assert im.compressed_bytes(flat, "PNG") < 5000 < im.compressed_bytes(noise, "PNG")
    assert im.compressed_bytes(flat, "JPEG") < im.compressed_bytes(noise, "JPEG")
    # a fixed resolution: a small and a large copy of one picture measure nearly the same
    small = torch.rand(3, 64, 96)
    big = torch.nn.functional.interpolate(small[None], scale_factor=8, mode="nearest")[0]
    assert im.square(small).shape == im.square(big).shape == (512, 512, 3)


def test_audio_measures_order_tone_and_noise() -> None:
    from modalities.audio import measures as am

    rate = 16000
    t = torch.arange(rate * 2) / rate
    tone = am.fixed_length(torch.sin(2 * math.pi * 440 * t), rate * 4)
    noise = am.fixed_length(torch.rand(rate * 2) * 2 - 1, rate * 4)
    assert tone.numel() == rate * 4 and tone.abs().max() == pytest.approx(1.0)
    assert am.spectral_entropy(tone, rate) < 2.5 < 6.5 < am.spectral_entropy(noise, rate)
    assert am.flac_bytes(tone, rate) < am.flac_bytes(noise, rate)


def test_modalities_offer_the_capability() -> None:
    assert isinstance(load_modality("image"), SourceMeasures)
    assert isinstance(load_modality("audio"), SourceMeasures)


def test_source_stats_with_and_without_a_cached_teacher(tiny_recipe) -> None:
    from aip import recipe as recipe_mod
    from aip.run import train_teacher

    r = recipe_mod.load(tiny_recipe, ["teacher.fit.epochs=1"])
    cpu = torch.device("cpu")
    before = source_stats(r, device=cpu, views=64)
    assert before["source"] == "skimage:astronaut" and before["png_bytes"] > before["jpeg_bytes"] > 0
    assert before["teacher"].startswith("unavailable without training")
    train_teacher(r, device=cpu)
    after = source_stats(r, device=cpu, views=64)
    assert 0 < after["teacher_class_coverage"] <= 1 and after["views"] == 64
    assert 0 <= after["teacher_entropy_bits"] <= after["teacher_max_entropy_bits"] == 2.0
    json.dumps(after)  # what the command prints


def test_source_stats_cli_one_line_error_for_dataset_sources(tiny_recipe) -> None:
    from tests.conftest import run_cli

    r = run_cli("source-stats", str(tiny_recipe), "--set", 'source.uri="dataset:train"')
    assert r.returncode == 2 and "many images, not one" in r.stderr and r.stderr.strip().count("\n") == 0
