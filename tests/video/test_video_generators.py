"""The clip generator's richer motion (``[source]`` options): each does what it says, measured on the clips; with
all of them off a clip is the paper's linear pan bit for bit; each keeps shapes and range, reads nothing back to
the host (CUDA-graph safe), and a bad value is one error naming the key."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from aip import graphs
from aip import recipe as recipes
from aip.errors import RecipeError
from aip.graphs import forbid_host_reads
from aip.schema import build
from modalities.image.atlas import fit_boxes
from modalities.video.config import VideoSourceConfig
from modalities.video.source import ClipSampler
from tests.conftest import ROOT, run_cli

CPU = torch.device("cpu")
STILL = {"jitter_p": 0.0, "hflip": 0.0}  # no draws after the layers': the scene behind them is the paper's
OPTIONS = {
    "curved": {"path": "curved"},
    "rotate": {"rotate": 30.0},
    "sprites": {"sprites": 3, "sprite_shape": "disc"},
    "box sprites": {"sprites": 2, "sprite_shape": "box", "sprite_scale": [0.1, 0.6]},
    "photometric": {"photometric": 0.5},
    "occlusion": {"occlusion_p": 1.0},
    "everything": {"path": "curved", "rotate": 45.0, "sprites": 2, "photometric": 0.3, "occlusion_p": 0.5},
}


def _gradient(h: int = 200, w: int = 300) -> torch.Tensor:
    """Red is x and green is y (a position can be read back from a colour), blue constant."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([xx, yy, torch.full_like(xx, 0.5)])


def _clips(img: torch.Tensor, n: int, seed: int = 0, **kw) -> torch.Tensor:
    torch.manual_seed(seed)
    return ClipSampler(img, VideoSourceConfig(**kw), device=CPU).sample(n)


def _paper_clips(sampler: ClipSampler, n: int) -> torch.Tensor:
    """The paper's generator from its formula (a linear pan between two random-resized-crop boxes of one initial
    crop), drawing in the sampler's order, without jitter and flips."""
    cfg = sampler.cfg
    H, W, s, t = sampler.height, sampler.width, cfg.size, cfg.frames
    side = max(cfg.init_crop * min(H, W), float(min(s, H, W)))
    rw = rh = torch.full((n,), side)
    rx, ry = torch.rand(n) * (W - rw), torch.rand(n) * (H - rh)
    ends = []
    for _ in range(2):
        w, h = fit_boxes(rw * rh, rw, rh, scale=cfg.scale, ratio=cfg.ratio)
        ends.append(torch.stack([rx + w / 2 + torch.rand(n) * (rw - w), ry + h / 2 + torch.rand(n) * (rh - h), w, h],
                                -1))
    start = torch.randint(0, cfg.pan_frames - cfg.span + 1, (n,))
    alpha = ((start[:, None] + torch.arange(t) * cfg.stride).float() / (cfg.pan_frames - 1))[..., None]
    cx, cy, w, h = ((1 - alpha) * ends[0][:, None] + alpha * ends[1][:, None]).reshape(n * t, 4).unbind(-1)
    level = torch.clamp(torch.floor(torch.log2((torch.maximum(w, h) / s).clamp(min=1.0))), 0,
                        sampler.num_levels - 1).long()
    sx, sy, tx, ty = sampler.atlas_maps[level].unbind(-1)
    lin = (torch.arange(s, dtype=torch.float32) + 0.5) / s * 2 - 1
    gx = ((cx[:, None] + lin[None] * w[:, None] / 2) / W * 2 - 1) * sx[:, None] + tx[:, None]
    gy = ((cy[:, None] + lin[None] * h[:, None] / 2) / H * 2 - 1) * sy[:, None] + ty[:, None]
    grid = torch.stack([gx[:, None, :].expand(-1, s, -1), gy[:, :, None].expand(-1, -1, s)], -1)
    out = F.grid_sample(sampler.atlas.expand(n * t, -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out.reshape(n, t, -1, s, s).transpose(1, 2).clamp(0, 1)


@pytest.mark.parametrize(("stride", "pan_frames", "scale"), [(1, 16, (0.002, 1.0)), (2, 12, (0.05, 0.5))])
def test_with_every_option_off_a_clip_is_the_papers_pan_bit_for_bit(stride, pan_frames, scale):
    torch.manual_seed(0)
    img = F.interpolate(torch.rand(1, 3, 24, 32), size=(180, 240), mode="bicubic")[0].clamp(0, 1)
    cfg = VideoSourceConfig(frames=4, size=32, stride=stride, pan_frames=pan_frames, scale=scale, **STILL)
    assert (cfg.path, cfg.rotate, cfg.sprites, cfg.photometric, cfg.occlusion_p) == ("linear", 0.0, 0, 0.0, 0.0)
    sampler = ClipSampler(img, cfg, device=CPU)
    torch.manual_seed(5)
    clips = sampler.sample(16)
    torch.manual_seed(5)
    assert torch.equal(clips, _paper_clips(sampler, 16))


@pytest.mark.parametrize("name", ["kinetics400", "ucf101", "motion"])
def test_shipped_recipes_keep_the_papers_generator(name):
    src = recipes.load(ROOT / "recipes" / f"{name}.toml").source
    assert (src.path, src.rotate, src.sprites, src.photometric, src.occlusion_p) == ("linear", 0.0, 0, 0.0, 0.0)


@pytest.mark.parametrize("video", [False, True], ids=["image", "video"])
@pytest.mark.parametrize("name", list(OPTIONS))
def test_each_option_keeps_shape_and_range_and_reads_nothing_back(name, video, monkeypatch):
    source = torch.rand(12, 3, 60, 80) if video else _gradient(120, 160)
    cfg = build(VideoSourceConfig, {"frames": 4, "size": 32, "pan_frames": 8, **OPTIONS[name]}, "source")
    sampler = ClipSampler(source, cfg, device=CPU, crop=(0.5, 0.9), crop_hflip=0.5)
    assert graphs.capturable(sampler)

    def from_host(*args, **kwargs):
        raise AssertionError("a tensor made from host data while sampling (a CUDA graph cannot capture the copy)")

    torch.manual_seed(0)
    with monkeypatch.context() as m, forbid_host_reads():
        m.setattr(torch, "tensor", from_host)
        m.setattr(torch, "as_tensor", from_host)
        m.setattr(torch, "from_numpy", from_host)
        clips = sampler.sample(6)
    assert clips.shape == (6, 3, 4, 32, 32) and clips.dtype == torch.float32 and clips.is_contiguous()
    assert 0 <= clips.min() and clips.max() <= 1 and torch.isfinite(clips).all()
    torch.manual_seed(0)
    assert torch.equal(clips, sampler.sample(6))  # all randomness from torch's global RNG


@pytest.mark.parametrize("name", ["sprites", "box sprites", "occlusion", "everything"])
def test_the_folded_flip_mirrors_the_layers_with_the_scene(name):
    """With the same draws (a flip probability of almost 0 draws as much as 1), the flipped clip is the mirror
    image of the unflipped one: every layer's mask and content move together with the folded crop and flip."""
    cfg = build(VideoSourceConfig, {"frames": 4, "size": 32, "pan_frames": 8, **OPTIONS[name]}, "source")
    clips = []
    for p in (1e-9, 1.0):
        torch.manual_seed(0)
        clips.append(ClipSampler(_gradient(), cfg, device=CPU, crop=(0.5, 0.9), crop_hflip=p).sample(8))
    assert torch.allclose(clips[0].flip(-1), clips[1], atol=1e-4)


def _centres(clips: torch.Tensor, w: int, h: int) -> torch.Tensor:
    """The source position (pixels) each frame of a clip of :func:`_gradient` is centred on, ``(B, T, 2)``."""
    mean = clips[:, :2].mean(dim=(3, 4)).transpose(1, 2)  # (B, T, red/green)
    return mean * torch.tensor([w - 1.0, h - 1.0]) + 0.5


def test_a_curved_path_keeps_its_ends_and_bends_in_between():
    kw = dict(frames=8, pan_frames=8, size=32, scale=(0.05, 0.3), **STILL)
    linear, curved = _clips(_gradient(), 32, **kw), _clips(_gradient(), 32, path="curved", **kw)
    ends = [0, -1]
    assert torch.equal(curved[:, :, ends], linear[:, :, ends])  # the same first and last box
    assert not torch.equal(curved[:, :, 1:-1], linear[:, :, 1:-1])
    bend = []
    for clips in (linear, curved):
        c = _centres(clips, 300, 200)  # (B, T, 2) source pixels
        bend.append((c[:, 2:] - 2 * c[:, 1:-1] + c[:, :-2]).norm(dim=-1).amax(1))  # second differences
    assert bend[0].max() < 0.5  # a straight pan at constant speed (in source pixels)
    assert (bend[1] > 2.0).float().mean() > 0.5  # most curved pans bend or change speed by pixels per frame


def _orientation(frames: torch.Tensor) -> torch.Tensor:
    """The dominant gradient direction of each ``(..., H, W)`` frame in degrees (0: it varies along x only),
    from the structure tensor of central differences."""
    gx = (frames[..., 1:-1, 2:] - frames[..., 1:-1, :-2]) / 2
    gy = (frames[..., 2:, 1:-1] - frames[..., :-2, 1:-1]) / 2
    jxx, jyy, jxy = (gx * gx).mean((-2, -1)), (gy * gy).mean((-2, -1)), (gx * gy).mean((-2, -1))
    return torch.rad2deg(0.5 * torch.atan2(2 * jxy, jxx - jyy))


def test_rotation_turns_a_striped_pattern_by_the_drawn_roll():
    x = torch.arange(256.0)
    stripes = (0.5 + 0.4 * torch.sin(2 * math.pi * x / 16)).expand(3, 256, 256)  # vertical stripes
    kw = dict(frames=4, pan_frames=4, size=48, scale=(0.3, 0.3), ratio=(1.0, 1.0), **STILL)
    still = _clips(stripes, 16, **kw)
    assert _orientation(still[:, 0]).abs().max() < 1.0  # the paper's camera never rolls
    sampler = ClipSampler(stripes, VideoSourceConfig(rotate=40.0, **kw), device=CPU)
    torch.manual_seed(0)
    angle = torch.rad2deg(sampler.camera(16).angle)  # the sample's first draws are its camera's
    torch.manual_seed(0)
    clips = sampler.sample(16)
    measured = _orientation(clips[:, 0])  # (B, T)
    assert (measured + angle).abs().max() < 3.0  # turned by the roll (y points down: the sign flips)
    assert angle.abs().max() > 20 and (angle[:, -1] - angle[:, 0]).abs().max() > 10  # rolled, and turning
    # the rolled box stays inside the image: its corners read no padding
    cam = sampler.camera(64)
    cx, cy, w, h = cam.boxes.unbind(-1)
    cos, sin = cam.angle.cos(), cam.angle.sin()
    for u, v in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        px, py = cx + u * w / 2 * cos - v * h / 2 * sin, cy + u * w / 2 * sin + v * h / 2 * cos
        assert px.min() >= -1e-3 and px.max() <= 256 + 1e-3 and py.min() >= -1e-3 and py.max() <= 256 + 1e-3


def _changed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pixels where two clips differ, ``(B, T, H, W)``."""
    return (a - b).abs().amax(1) > 1e-4


def _interior(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` ``(B, T, H, W)`` eroded by one pixel, the frame's border counted as outside (drops edge pixels)."""
    m = F.pad(mask.float().flatten(0, 1), (1, 1, 1, 1))
    return -F.max_pool2d(-m, 3, 1).view_as(mask) > 0.5


def test_a_sprite_is_a_rigid_patch_of_the_image_moving_over_the_unchanged_scene():
    kw = dict(frames=4, pan_frames=4, size=64, scale=(0.1, 0.3), **STILL)
    plain = _clips(_gradient(), 32, **kw)
    one = _clips(_gradient(), 32, sprites=1, sprite_scale=(0.3, 0.3), **kw)
    changed = _changed(one, plain)  # where the sprite is; elsewhere the scene is the paper's clip
    area = changed.sum((-2, -1)).float()  # (B, T)
    assert area.max() <= math.pi * (0.3 * 32 + 1) ** 2  # a disc of radius 0.3 x half the frame
    assert (area.amax(1) > 50).float().mean() > 0.6  # most clips show their sprite
    moved = 0
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    inside = _interior(changed)
    for b in range(32):
        if area[b].min() < 100:  # partly out of the frame: its centroid is not its centre
            continue
        m = changed[b].float()
        centre = torch.stack([(m * xx).sum((-2, -1)), (m * yy).sum((-2, -1))], -1) / area[b][:, None]
        moved += int((centre[-1] - centre[0]).norm() > 2)
        # the sprite is the image itself, scaled: red is linear in x and green in y, as in the source
        for t in range(4):
            i = inside[b, t]
            cols, rows = xx[i], yy[i]
            for channel, coord in ((0, cols), (1, rows)):
                val = one[b, channel, t][i]
                fit = torch.linalg.lstsq(torch.stack([coord, torch.ones_like(coord)], -1), val[:, None]).solution
                assert (val - fit[0] * coord - fit[1]).abs().max() < 1e-3
    assert moved >= 3


def test_the_folded_crop_zooms_the_layers_with_the_scene():
    """The crop (side 0.7 of the clip) magnifies the sprites as it does the scene: a sprite of 0.3 x the frame
    shows as 0.3 / 0.7 of it, and at its first frame with the scene's magnification (red's slope along x)."""
    cfg = dict(frames=4, pan_frames=4, size=64, scale=(0.1, 0.3), **STILL)
    clips = []
    for sprites in (0, 1):
        torch.manual_seed(0)
        c = VideoSourceConfig(sprites=sprites, sprite_scale=(0.3, 0.3), **cfg)
        clips.append(ClipSampler(_gradient(), c, device=CPU, crop=(0.49, 0.49)).sample(96))
    plain, one = clips
    changed = _changed(one, plain)[:, 0]  # (B, S, S) first frames
    inside = _interior(changed[:, None])[:, 0]
    xx = torch.arange(64.0).expand(64, 64)
    tested = 0
    for b in range(96):
        if inside[b].sum() < 200 or changed[b, [0, -1]].any() or changed[b, :, [0, -1]].any():
            continue  # only sprites wholly inside the frame
        assert abs(changed[b].sum() / (math.pi * (0.3 / 0.7 * 32) ** 2) - 1) < 0.1
        slopes = []
        for region in (inside[b], ~changed[b]):
            x, red = xx[region], one[b, 0, 0][region]
            slopes.append(torch.linalg.lstsq(torch.stack([x, torch.ones_like(x)], -1), red[:, None]).solution[0])
        assert abs(slopes[0] / slopes[1] - 1) < 0.02
        tested += 1
    assert tested >= 3


def test_sprites_change_size_and_box_sprites_are_rectangles():
    kw = dict(frames=4, pan_frames=4, size=64, scale=(0.1, 0.3), **STILL)
    plain = _clips(_gradient(), 32, **kw)
    boxes = _clips(_gradient(), 32, sprites=1, sprite_shape="box", sprite_scale=(0.1, 0.5), **kw)
    changed = _changed(boxes, plain)
    area = changed.sum((-2, -1)).float()
    ys, xs = changed.any(-1), changed.any(-2)  # rows and columns the sprite touches, (B, T, S)
    bbox = ys.sum(-1) * xs.sum(-1)
    seen = area > 20
    assert (area[seen] / bbox[seen]).min() > 0.9  # a box fills its bounding box
    full = seen.all(1)
    ratio = area[full, -1] / area[full, 0]
    assert ((ratio > 1.5) | (ratio < 1 / 1.5)).any()  # some sprite approaches or recedes


def test_photometric_drifts_each_frames_colour_smoothly():
    grey = torch.full((3, 120, 160), 0.5)
    kw = dict(frames=4, pan_frames=4, size=32, **STILL)
    assert torch.allclose(_clips(grey, 32, **kw), torch.full((32, 3, 4, 32, 32), 0.5), atol=1e-6)
    clips = _clips(grey, 32, photometric=0.4, **kw)
    means = clips.mean((3, 4))  # (B, 3, T): 0.5 x each channel's gain
    assert torch.allclose(clips, means[..., None, None].expand_as(clips), atol=1e-6)  # uniform frames
    assert 0.5 * 0.6 - 1e-6 <= means.min() and means.max() <= 0.5 * 1.4 + 1e-6
    steps = means[..., 1:] - means[..., :-1]
    assert ((steps >= -1e-6).all(-1) | (steps <= 1e-6).all(-1)).all()  # each channel drifts one way ...
    drift = (means[..., -1] - means[..., 0]).abs()
    big = drift > 0.05  # ... easing in and out (smoothstep: steps of 0.26, 0.48, 0.26 of the drift)
    assert (steps[..., 1].abs()[big] > 1.5 * steps[..., 0].abs()[big]).all()
    assert torch.allclose(steps[..., 0], steps[..., 2], atol=1e-5)
    assert (drift > 0.05).float().mean() > 0.5
    assert (drift[:, 0] - drift[:, 1]).abs().max() > 0.02  # colours drift apart, not only brightness
    # contrast about the frame's mean changes too: std / mean, which the gains leave alone
    halves = torch.cat([torch.full((3, 120, 80), 0.3), torch.full((3, 120, 80), 0.7)], -1)
    frames = _clips(halves, 32, photometric=0.4, init_crop=0.0, scale=(1.0, 1.0), ratio=(4 / 3, 4 / 3), frames=4,
                    pan_frames=4, size=32, **STILL)[:, 0]  # (B, T, S, S), the whole image
    cv = frames.std((-2, -1)) / frames.mean((-2, -1))
    assert ((cv[:, -1] / cv[:, 0] - 1).abs() > 0.1).float().mean() > 0.5


def test_an_occluder_hides_a_moving_rectangle_of_the_frames():
    kw = dict(frames=4, pan_frames=4, size=64, scale=(0.1, 0.3), **STILL)
    plain = _clips(_gradient(), 64, **kw)
    hidden = _clips(_gradient(), 64, occlusion_p=1.0, **kw)
    changed = _changed(hidden, plain)
    area = changed.sum((-2, -1)).float()  # (B, T)
    assert (area.amax(1) >= (0.2 * 64) ** 2 / 4).all()  # every clip: at least a quarter of the smallest occluder
    bbox = changed.any(-1).sum(-1) * changed.any(-2).sum(-1)
    seen = area > 30
    assert (area[seen] / bbox[seen]).min() > 0.9  # a rectangle
    assert area.max() <= (0.5 * 64 + 1) ** 2
    # a flat colour in about half of the clips: its pixels all the same
    inside = _interior(changed)
    flat = []
    for b in range(64):
        t = int(area[b].argmax())
        px = hidden[b, :, t][:, inside[b, t]]
        if px.shape[1] > 30:
            flat.append(bool((px - px[:, :1]).abs().max() < 1e-5))
    assert 0.25 < sum(flat) / len(flat) < 0.75
    ys = changed.float().mean(-1)  # it moves: the rows it covers shift
    rows = torch.arange(64.0)
    centre_y = (ys * rows).sum(-1) / ys.sum(-1).clamp(min=1e-6)
    full = (area > 30).all(1)
    assert ((centre_y[full, -1] - centre_y[full, 0]).abs() > 2).float().mean() > 0.3
    some = _changed(_clips(_gradient(), 64, occlusion_p=0.5, **kw), plain).flatten(1).any(1).float().mean()
    assert 0.25 < some < 0.75  # occlusion_p clips of the batch


@pytest.mark.parametrize(("data", "key"), [
    ({"path": "zigzag"}, "source.path"), ({"rotate": -5.0}, "source.rotate"), ({"rotate": 200}, "source.rotate"),
    ({"sprites": -1}, "source.sprites"), ({"sprites": 1.5}, "source.sprites"),
    ({"sprite_scale": [0.5, 0.2]}, "source.sprite_scale"), ({"sprite_scale": [0.0, 0.2]}, "source.sprite_scale"),
    ({"sprite_shape": "star"}, "source.sprite_shape"), ({"photometric": 1.5}, "source.photometric"),
    ({"occlusion_p": 2.0}, "source.occlusion_p"), ({"occlusion_scale": [0.2, 1.5]}, "source.occlusion_scale"),
])
def test_bad_values_are_one_error_naming_the_key(data, key):
    with pytest.raises(RecipeError, match=key) as e:
        build(VideoSourceConfig, data, "source")
    assert "\n" not in str(e.value)


def test_cli_rejects_a_bad_value_and_previews_every_option(tmp_path):
    bad = run_cli("check", "recipes/motion.toml", "--set", "source.sprites=-2")
    assert bad.returncode == 2 and "source.sprites" in bad.stderr and "Traceback" not in bad.stderr
    sets = ["source.path=curved", "source.rotate=20", "source.sprites=2", "source.photometric=0.3",
            "source.occlusion_p=0.5"]
    out = tmp_path / "preview"
    result = run_cli("preview", "recipes/motion.toml", "--out", str(out), "--count", "4",
                     *(a for s in sets for a in ("--set", s)))
    assert result.returncode == 0, result.stderr[-1500:]
    assert (out / "views.png").is_file() and (out / "views.gif").is_file() and (out / "augmented.png").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("video", [False, True], ids=["image", "video"])
def test_every_option_is_captured_in_a_cuda_graph(video):
    """The data path with every option on (and the recipe's augmenter) is captured; its replays are new batches,
    the ones eager calls make from the same seed."""
    from modalities.video.augment import VideoAugmenter
    from modalities.video.config import VideoAugmentConfig

    dev = torch.device("cuda")
    source = torch.rand(12, 3, 60, 80) if video else _gradient(120, 160)
    cfg = build(VideoSourceConfig, {"frames": 4, "size": 32, "pan_frames": 8, **OPTIONS["everything"]}, "source")
    sampler = ClipSampler(source, cfg, device=dev, crop=(0.5, 0.9), crop_hflip=0.5)
    augmenter = VideoAugmenter(VideoAugmentConfig(short_side=(32, 36)), size=32, geometry=False).to(dev)

    def make():
        return augmenter(sampler.sample(16))

    torch.manual_seed(0)
    data = graphs.GraphedData(make, device=dev)
    first, second = data().clone(), data().clone()
    assert data.active and data.error == "" and not torch.equal(first, second)
    torch.manual_seed(0)
    assert torch.allclose(first, make(), atol=1e-5) and torch.allclose(second, make(), atol=1e-5)
