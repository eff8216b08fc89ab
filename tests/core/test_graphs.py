"""The data path as CUDA graphs need it (aip.graphs): no host reads, randomness on the device; the folded video
crop; and the core's wrapper on devices without graphs.

The capture itself needs a GPU (scripts/check_graphs.py runs it there); on the CPU these tests check the rules
a capturable part must keep, with :func:`aip.graphs.forbid_host_reads`.
"""

from __future__ import annotations

import math

import pytest
import torch

from aip import graphs
from aip import recipe as recipes
from aip.graphs import HostReadError, beta, forbid_host_reads, permutation
from aip.hardware import Policy
from aip.mixing import cutmix
from aip.registry import load_modality
from aip.trainer import data_path
from modalities.image.augment import ImageAugmenter
from modalities.image.config import ImageAugmentConfig, ImageSourceConfig
from modalities.image.source import ImageViewSampler, load_image
from modalities.video.augment import VideoAugmenter, crop_scale
from modalities.video.augmix import AugMix
from modalities.video.config import VideoAugmentConfig, VideoSourceConfig
from modalities.video.source import ClipSampler

CPU = torch.device("cpu")


@pytest.mark.parametrize("read", [
    lambda x: bool(x.any()), lambda x: float(x.max()), lambda x: x.nonzero(), lambda x: x[x > 0.5],
    lambda x: x.sum().item(), lambda x: int(x.argmax()),
])
def test_forbid_host_reads_catches_every_kind_of_read(read):
    with pytest.raises(HostReadError), forbid_host_reads():
        read(torch.rand(8))


def test_forbid_host_reads_lets_device_only_ops_through():
    x = torch.rand(8)
    with forbid_host_reads():
        y = torch.where(x > 0.5, x, 1 - x)[x.argsort()]
        y = y[torch.tensor([0, 3])] + beta(1.0, 2, CPU)
    assert y.shape == (2,)


def _image_parts(*, size: int = 32):
    src = ImageSourceConfig(uri="skimage:astronaut", size=size, zoom_out_p=0.5)
    aug = ImageAugmentConfig(crop="pad" if size < 64 else "rrc", pad=4, jitter_p=0.8, grayscale_p=0.2,
                             solarize_p=0.2, cutmix=1.0)
    sampler = ImageViewSampler(load_image(src), src, device=CPU, crop=aug)
    return sampler, ImageAugmenter(aug, size=size, channels=3, geometry=False)


@pytest.mark.parametrize("size", [32, 96])
def test_image_data_path_reads_nothing_back(size):
    sampler, augmenter = _image_parts(size=size)
    assert graphs.capturable(sampler, augmenter)
    torch.manual_seed(0)
    with forbid_host_reads():
        x = augmenter(sampler.sample(64))
    assert x.shape == (64, 3, size, size) and 0 <= x.min() and x.max() <= 1
    # kornia's crop and flip (views of other samplers) draw on the host: such an augmenter is not capturable
    assert not ImageAugmenter(ImageAugmentConfig(crop="rrc"), size=size, channels=3).capturable


def test_rotation_shear_inverse_is_exact():
    sampler = _image_parts()[0]
    torch.manual_seed(0)
    inv, rot = sampler._theta(16)
    torch.manual_seed(0)
    cfg = sampler.cfg
    r = torch.deg2rad(torch.empty(16).uniform_(-cfg.degrees, cfg.degrees))
    sh = torch.tan(torch.deg2rad(torch.empty(16).uniform_(-cfg.shear, cfg.shear)))
    rmat = torch.stack([torch.stack([r.cos(), -r.sin()], -1), torch.stack([r.sin(), r.cos()], -1)], -2)
    smat = torch.eye(2).repeat(16, 1, 1)
    smat[:, 0, 1] = sh
    assert torch.allclose(rot, r)
    assert torch.allclose(inv @ (rmat @ smat) * math.sqrt(2), torch.eye(2).expand(16, 2, 2), atol=1e-5)


def test_device_beta_permutation_and_cutmix():
    torch.manual_seed(0)
    for a in (0.5, 1.0, 2.0):
        lam = beta(a, 40_000, CPU)
        assert abs(lam.mean() - 0.5) < 0.01
        assert abs(lam.var() - 1 / (4 * (2 * a + 1))) < 0.01
    x = torch.arange(8.0).view(8, 1, 1, 1).expand(8, 3, 16, 16)
    with forbid_host_reads():
        y = cutmix(x, alpha=1.0, dims=2)
    assert y.shape == x.shape and not torch.equal(y, x)
    assert set(y.unique().tolist()) <= set(range(8))  # pixels come from partners in the batch, unblended
    perms = torch.stack([permutation(6, CPU) for _ in range(200)])
    assert (perms.sort(1).values == torch.arange(6)).all()  # permutations ...
    assert len({tuple(p.tolist()) for p in perms}) > 100  # ... of many orders


def _video_cfgs():
    src = VideoSourceConfig(frames=4, size=48, stride=1, pan_frames=8, jitter_p=0.5)
    return src, VideoAugmentConfig(short_side=(56, 72), hflip=0.5, cutmix=1.0)


def test_video_data_path_reads_nothing_back():
    src, aug = _video_cfgs()
    img = torch.rand(3, 120, 160)
    sampler = ClipSampler(img, src, device=CPU, crop=crop_scale(aug, 48), crop_hflip=0.5)
    augmenter = VideoAugmenter(aug, size=48, geometry=False)
    assert graphs.capturable(sampler, augmenter)
    torch.manual_seed(0)
    with forbid_host_reads():
        clips = augmenter(sampler.sample(6))
    assert clips.shape == (6, 3, 4, 48, 48) and 0 <= clips.min() and clips.max() <= 1
    # kornia's crop in the augmenter draws on the host: not capturable
    assert not VideoAugmenter(aug, size=48).capturable


def test_augmix_keeps_frames_consistent():
    frame = torch.rand(6, 3, 1, 32, 32)
    clips = frame.expand(-1, -1, 4, -1, -1).contiguous()
    torch.manual_seed(0)
    out = AugMix(width=3, severity=5, depth=4)(clips)
    assert torch.allclose(out, out[:, :, :1].expand_as(out), atol=1e-6) and not torch.allclose(out, clips)


def _ramp(h: int = 64, w: int = 64) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([xx, yy, torch.full_like(xx, 0.5)])


def test_folded_video_crop_zooms_in_and_flips():
    """A clip of the whole (square) source spans x in [0, 1]; the folded crop of side f spans f of it, at a
    random place, and the folded flip mirrors it."""
    src = VideoSourceConfig(frames=2, size=32, stride=1, pan_frames=2, jitter_p=0.0, init_crop=0.0, hflip=0.0,
                            vflip=0.0, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    whole = ClipSampler(_ramp(), src, device=CPU).sample(4)
    span = whole[:, 0, :, :, -1] - whole[:, 0, :, :, 0]  # red (x) from the left column to the right one
    assert torch.allclose(span, torch.full_like(span, 31 / 32), atol=0.02)
    torch.manual_seed(0)
    half = ClipSampler(_ramp(), src, device=CPU, crop=(0.25, 0.25)).sample(64)  # side f = 0.5
    span = half[:, 0, :, :, -1] - half[:, 0, :, :, 0]
    assert torch.allclose(span, torch.full_like(span, 0.5 * 31 / 32), atol=0.02)
    left = half[:, 0, 0, 0, 0]
    assert left.min() < 0.1 and left.max() > 0.4  # the crop lands at different places
    flipped = ClipSampler(_ramp(), src, device=CPU, crop=(0.25, 0.25), crop_hflip=1.0).sample(8)
    span = flipped[:, 0, :, :, -1] - flipped[:, 0, :, :, 0]
    assert torch.allclose(span, torch.full_like(span, -0.5 * 31 / 32), atol=0.02)


def test_graphed_data_is_plain_make_off_cuda():
    calls = []

    def make():
        calls.append(1)
        return torch.full((2,), float(len(calls)))

    data = graphs.GraphedData(make, device=CPU)
    assert not data.enabled
    assert data()[0] == 1 and data()[0] == 2 and not data.active and data.error == ""


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")


@needs_cuda
def test_graphed_data_replays_new_batches_equal_to_the_eager_ones():
    dev = torch.device("cuda")
    base = torch.linspace(0, 1, 64, device=dev)

    def make():
        return base * torch.rand(64, device=dev) + graphs.beta(2.0, 64, dev)

    torch.manual_seed(0)
    data = graphs.GraphedData(make, device=dev)
    first, second = data().clone(), data().clone()
    assert data.active and data.error == "" and not torch.equal(first, second)
    torch.manual_seed(0)  # the capture puts the generators back: replays draw what eager calls draw
    assert torch.equal(first, make()) and torch.equal(second, make())


@needs_cuda
def test_graphed_data_falls_back_to_eager_on_a_host_read_or_host_randomness():
    import random

    dev = torch.device("cuda")
    base = torch.rand(64, device=dev)
    reads = graphs.GraphedData(lambda: base * float(torch.rand(1, device=dev)), device=dev)  # .item()
    out = reads()  # found in the first warm-up call, before any capture
    assert out.shape == (64,) and not reads.active and not reads.enabled and "_local_scalar_dense" in reads.error
    assert not torch.equal(reads(), reads())  # eager from then on, new numbers each call
    torch.rand(1, device=dev)  # the CUDA generator still works
    # a number drawn on the host is baked into the graph: two equal replays, refused
    host = graphs.GraphedData(lambda: base * random.choice([2.0, 3.0]), device=dev)
    host()
    assert not host.active and "same batch" in host.error


_FAILS_INSIDE_CAPTURE = """
import torch
from aip import graphs
from aip.errors import AipError

dev = torch.device("cuda")

def make():
    torch.cuda.synchronize(dev)  # allowed eagerly, not while a stream is captured
    return torch.ones(4, device=dev)

try:
    graphs.GraphedData(make, device=dev)()
except AipError as e:
    print("AipError:", e)
"""


@needs_cuda
def test_graphed_data_that_fails_inside_the_capture_says_how_to_turn_it_off():
    # in its own process: a failed capture leaves the CUDA generator unusable for the rest of the process
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-c", _FAILS_INSIDE_CAPTURE], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("AipError: the data path could not be captured") and "graph_data = 'off'" in r.stdout


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_modalities_data_path_runs_eagerly_on_the_cpu(mode):
    rec = recipes.load("recipes/cifar10.toml", ["source.uri=skimage:astronaut", f"train.graph_data={mode}",
                                                "train.batch_size=4"])
    assert not graphs.wanted(rec, CPU)
    modality = load_modality(rec.modality)
    sampler, augmenter = modality.sampler(rec, device=CPU), modality.augmenter(rec, device=CPU)
    assert graphs.capturable(sampler, augmenter)  # the same parts a GPU would capture
    data = data_path(rec, sampler, augmenter, policy=Policy(CPU, memory_format=torch.channels_last))
    x = data()
    assert x.shape == (4, 3, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)


def test_graph_data_key_is_checked():
    from aip.errors import RecipeError

    with pytest.raises(RecipeError, match="train.graph_data"):
        recipes.load("recipes/cifar10.toml", ["train.graph_data=on"])  # "auto" or "off"


def test_channel_mix_without_bmm_matches_bmm():
    from modalities.image.color import mix_channels

    flat, a, off = torch.rand(4, 3, 100), torch.rand(4, 3, 3), torch.rand(4)
    assert torch.allclose(mix_channels(flat, a, off, bmm=False), mix_channels(flat, a, off, bmm=True), atol=1e-6)
