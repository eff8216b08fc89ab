"""Synthesized clips (shape, range, camera motion, flips, a video file as the source), AugMix and CutMix on clips
(the same parameters on every frame), and the configuration checks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from aip.errors import AipError, RecipeError
from aip.schema import build
from modalities.video.augment import VideoAugmenter
from modalities.video.augmix import AugMix
from modalities.video.config import VideoAugmentConfig, VideoSourceConfig
from modalities.video.motion import write_video
from modalities.video.source import ClipSampler, load_source

CPU = torch.device("cpu")


def _gradient(h: int = 200, w: int = 300) -> torch.Tensor:
    """An image whose red channel is x and green channel is y (position can be read back from colour)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([xx, yy, torch.full_like(xx, 0.5)])


def test_sampled_clips_have_the_shape_and_range_and_move():
    cfg = VideoSourceConfig(frames=4, size=32, stride=3, jitter_p=0.0, hflip=0.0, scale=(0.1, 0.5))
    torch.manual_seed(0)
    clips = ClipSampler(_gradient(), cfg, device=CPU).sample(8)
    assert clips.shape == (8, 3, 4, 32, 32) and clips.dtype == torch.float32
    assert 0 <= clips.min() and clips.max() <= 1
    # consecutive frames differ (the camera pans), and the read-back position moves linearly (a pan, no jumps)
    assert (clips[:, :, 1:] - clips[:, :, :-1]).abs().amax(dim=(1, 2, 3, 4)).min() > 1e-3
    centre = clips[:, :2].mean(dim=(3, 4))  # (B, 2, T): mean x (red) and y (green) of each frame
    steps = centre[..., 1:] - centre[..., :-1]
    assert torch.allclose(steps, steps.mean(-1, keepdim=True), atol=2e-3)


def test_a_pan_is_a_shifted_copy_of_the_image():
    """With boxes of one fixed size the frames are translated crops: each frame equals its neighbour shifted."""
    torch.manual_seed(0)
    img = torch.nn.functional.interpolate(torch.rand(1, 3, 32, 32), size=256, mode="bicubic")[0].clamp(0, 1)
    cfg = VideoSourceConfig(frames=2, size=32, stride=1, pan_frames=2, jitter_p=0.0, hflip=0.0, init_crop=0.1875,
                            scale=(4 / 9, 4 / 9), ratio=(1.0, 1.0))  # 32 px boxes inside a 48 px initial crop
    sampler = ClipSampler(img, cfg, device=CPU)
    torch.manual_seed(1)
    boxes, _ = sampler.frame_boxes(4)
    assert torch.allclose(boxes[:, 0, 2:], boxes[:, 1, 2:])  # same size, only the centre moves
    torch.manual_seed(1)
    clips = sampler.sample(4)
    tested = 0
    for b in range(4):
        shift = (boxes[b, 1, :2] - boxes[b, 0, :2]).round().long().tolist()  # box is 32 px: 1 px = 1 px
        dx, dy = int(shift[0]), int(shift[1])
        if abs(dx) >= 24 or abs(dy) >= 24:
            continue
        f0, f1 = clips[b, :, 0], clips[b, :, 1]
        a = f1[:, max(-dy, 0):32 - max(dy, 0), max(-dx, 0):32 - max(dx, 0)]
        c = f0[:, max(dy, 0):32 - max(-dy, 0), max(dx, 0):32 - max(-dx, 0)]
        if (dx, dy) == (0, 0):
            continue
        # aligned by the box shift, the frames agree (up to sub-pixel rounding) far better than unaligned
        assert (a - c).abs().mean() < 0.3 * (f1 - f0).abs().mean(), (b, dx, dy)
        tested += 1
    assert tested >= 2


def test_flips_mirror_whole_clips():
    cfg = VideoSourceConfig(frames=2, size=32, jitter_p=0.0, hflip=1.0, scale=(1.0, 1.0), init_crop=0.0,
                            ratio=(1.5, 1.5))
    torch.manual_seed(0)
    clips = ClipSampler(_gradient(), cfg, device=CPU).sample(3)
    red = clips[:, 0].mean(dim=(1, 2))  # (B, W): x position per column
    assert (red[:, 0] > red[:, -1]).all()  # x decreases left to right: mirrored


def test_sampling_is_reproducible_from_the_global_rng():
    cfg = VideoSourceConfig(frames=4, size=32)
    sampler = ClipSampler(_gradient(), cfg, device=CPU)
    torch.manual_seed(3)
    a = sampler.sample(4)
    torch.manual_seed(3)
    assert torch.equal(a, sampler.sample(4))


def test_a_video_file_source(tmp_path):
    frames = np.stack([np.full((48, 64, 3), 10 * t, np.uint8) for t in range(20)])
    path = write_video(tmp_path / "clip.mp4", frames, fps=10)
    # the frames' brightness encodes their index: keep the levels (the default would stretch 0..190 to 0..255)
    cfg = VideoSourceConfig(uri=str(path), frames=4, size=32, fps=10.0, pan_frames=8, jitter_p=0.0, levels="keep")
    source = load_source(cfg)
    assert source.shape == (20, 3, 48, 64)
    stretched = load_source(replace(cfg, levels="stretch"))  # one map for the whole video: the ramp stays a ramp
    assert float(stretched.amax()) == 1 and float(stretched[0].amax()) == 0
    assert (stretched.mean(dim=(1, 2, 3)).diff() > 0).all()
    clips = ClipSampler(source, cfg, device=CPU).sample(6)
    levels = (clips.mean(dim=(1, 3, 4)) * 255 / 10).round()  # (B, T) source frame index of each frame
    assert ((levels[:, 1:] - levels[:, :-1]) == 1).all()  # consecutive video frames
    with pytest.raises(AipError, match="fewer than one clip needs"):
        load_source(VideoSourceConfig(uri=str(path), frames=16, stride=4, pan_frames=61, size=32, fps=10.0))
    with pytest.raises(AipError, match="does not exist"):
        load_source(VideoSourceConfig(uri=str(tmp_path / "missing.mp4")))


def test_augmix_uses_the_same_parameters_on_every_frame():
    frame = torch.rand(6, 3, 1, 32, 32)
    clips = frame.expand(-1, -1, 4, -1, -1).contiguous()  # 4 identical frames per clip
    torch.manual_seed(0)
    out = AugMix(width=3, severity=5, depth=4)(clips)
    assert out.shape == clips.shape and 0 <= out.min() and out.max() <= 1
    assert torch.allclose(out, out[:, :, :1].expand_as(out), atol=1e-6)  # frames stay identical
    assert not torch.allclose(out, clips)  # and something happened
    per_clip = (out - clips).abs().mean(dim=(1, 2, 3, 4))
    assert per_clip.std() > 0  # different parameters per clip


def test_augmix_warps_each_frame_by_its_clips_map():
    """The clip's frames go through one grid_sample as channels: the same as warping frame by frame."""
    from modalities.video.augmix import _warp

    torch.manual_seed(0)
    clips = torch.rand(3, 3, 4, 20, 24)
    theta = torch.eye(2, 3).repeat(3, 1, 1) + torch.randn(3, 2, 3) * 0.2
    out = _warp(clips, theta)
    for i in range(3):
        grid = torch.nn.functional.affine_grid(theta[i:i + 1].expand(4, -1, -1), [4, 3, 20, 24], align_corners=False)
        frames = torch.nn.functional.grid_sample(clips[i].transpose(0, 1), grid, align_corners=False)
        assert torch.allclose(out[i], frames.transpose(0, 1), atol=1e-6)


def test_augmenter_keeps_shapes_and_frames_consistent():
    clips = torch.rand(8, 3, 1, 40, 40).expand(-1, -1, 4, -1, -1).contiguous()
    aug = VideoAugmenter(VideoAugmentConfig(short_side=(44, 56), cutmix=0.0), size=40)
    torch.manual_seed(0)
    out = aug(clips)
    assert out.shape == clips.shape
    assert torch.allclose(out, out[:, :, :1].expand_as(out), atol=1e-5)


def test_augmenter_cutmix_pastes_one_box_on_every_frame():
    b, t = 8, 4
    clips = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1, 1).expand(b, 3, t, 16, 16) / b
    clips = clips + torch.arange(t).view(1, 1, t, 1, 1) * 0.01  # frames differ a little
    aug = VideoAugmenter(VideoAugmentConfig(augmix=False, short_side=(16, 16), hflip=0.0, cutmix=1.0), size=16)
    torch.manual_seed(0)
    out = aug(clips)
    changed = (out - clips).abs().sum(1) > 1e-6  # (B, T, H, W) pixels taken from a partner
    assert changed.any()
    assert torch.equal(changed, changed[:, :1].expand_as(changed))  # the same box on all frames


@pytest.mark.parametrize(("section", "data", "message"), [
    ("source", {"pan_frames": 4, "frames": 4, "stride": 2}, "source.pan_frames"),
    ("source", {"frames": 0}, "source.frames"),
    ("source", {"test_short_side": 100, "size": 160}, "source.test_short_side"),
    ("augment", {"short_side": [200, 100]}, "augment.short_side"),
    ("augment", {"augmix_severity": 11}, "augment.augmix_severity"),
])
def test_config_checks_name_the_key(section, data, message):
    cls = VideoSourceConfig if section == "source" else VideoAugmentConfig
    with pytest.raises(RecipeError, match=message):
        build(cls, data, section)
