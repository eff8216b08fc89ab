"""The image modality's source sampler (views of one image) and augmenter: shapes, ranges, randomness, errors."""

import http.server
import threading
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from aip.errors import AipError
from modalities.image.augment import ImageAugmenter
from modalities.image.color import ColorJitter
from modalities.image.config import ImageAugmentConfig, ImageSourceConfig
from modalities.image.inputs import read_image
from modalities.image.source import ImageViewSampler, dead_leaves, load_image, load_image_uri

CPU = torch.device("cpu")


def sampler(**kw) -> ImageViewSampler:
    cfg = ImageSourceConfig(**{"uri": "skimage:astronaut", "size": 32, **kw})
    return ImageViewSampler(load_image(cfg), cfg, device=CPU)


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32), (3, 64)])
def test_views_have_the_asked_shape_and_range(channels, size):
    v = sampler(channels=channels, size=size).sample(16)
    assert v.shape == (16, channels, size, size) and v.dtype == torch.float32
    assert 0.0 <= v.min() and v.max() <= 1.0


def test_views_differ_per_sample_and_are_reproducible_from_the_seed():
    s = sampler()
    torch.manual_seed(0)
    a = s.sample(8)
    torch.manual_seed(0)
    b = s.sample(8)
    assert torch.equal(a, b)
    flat = a.flatten(1)
    assert torch.cdist(flat, flat).fill_diagonal_(1e9).min() > 0.1  # no two views alike


def test_without_random_geometry_a_view_is_a_crop_of_the_image():
    """scale 1, no init crop, no rotation/shear/jitter: the view is the whole (resized) square image."""
    cfg = ImageSourceConfig(size=16, init_crop=0, scale=(1.0, 1.0), ratio=(1.0, 1.0), degrees=0, shear=0, jitter_p=0)
    ramp = torch.linspace(0, 1, 64)
    img = torch.stack([ramp[None, :].expand(64, 64), ramp[:, None].expand(64, 64), torch.full((64, 64), 0.3)])
    v = ImageViewSampler(img, cfg, device=CPU).sample(2)
    # the centre crop keeps the middle 1/sqrt(2) of the box: compare with an area resize of that region
    side = 64 / 2**0.5
    lo = int(round((64 - side) / 2))
    ref = torch.nn.functional.interpolate(img[None, :, lo : 64 - lo, lo : 64 - lo], size=(16, 16), mode="area")
    assert torch.allclose(v[0], ref[0], atol=0.08)
    assert torch.equal(v[0], v[1])


def test_shear_leaves_black_corners_like_the_paper():
    cfg = ImageSourceConfig(uri="skimage:astronaut", size=32, degrees=0, shear=60.0 - 1e-3, jitter_p=0)
    s = ImageViewSampler(torch.ones(3, 256, 256), cfg, device=CPU)
    v = s.sample(64)
    assert (v == 0).any()  # a strong shear pushes corners outside the resized box
    cfg0 = ImageSourceConfig(uri="skimage:astronaut", size=32, degrees=0, shear=0, jitter_p=0)
    assert torch.allclose(ImageViewSampler(torch.ones(3, 256, 256), cfg0, device=CPU).sample(64), torch.ones(1))


def test_small_views_are_antialiased():
    """A fine checkerboard shrunk 8x must average to grey, not alias into a pattern."""
    board = (torch.arange(512)[:, None] + torch.arange(512)[None, :]) % 2
    img = board.float().expand(3, -1, -1).contiguous()
    cfg = ImageSourceConfig(size=32, init_crop=0, scale=(1.0, 1.0), ratio=(1.0, 1.0), degrees=0, shear=0, jitter_p=0)
    v = ImageViewSampler(img, cfg, device=CPU).sample(1)
    assert v.std() < 0.05 and abs(v.mean() - 0.5) < 0.05


def test_vflip_probability_one_flips_every_view():
    cfg = dict(uri="skimage:astronaut", size=32, jitter_p=0)
    s0, s1 = sampler(**cfg), sampler(**cfg, vflip=1.0)
    torch.manual_seed(1)
    a = s0.sample(4)
    torch.manual_seed(1)
    b = s1.sample(4)
    assert torch.equal(a.flip(-2), b)


@pytest.mark.parametrize("uri", ["synthetic:noise", "synthetic:dead_leaves", "skimage:camera"])
def test_builtin_sources_load(uri):
    img = load_image(ImageSourceConfig(uri=uri, synthetic_side=128, size=32))
    assert img.shape[0] == 3 and min(img.shape[1:]) >= 32 and 0 <= img.min() and img.max() <= 1


def test_dead_leaves_is_seeded_and_covers_the_canvas():
    a, b = dead_leaves(64, seed=3), dead_leaves(64, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, dead_leaves(64, seed=4))
    assert torch.unique(a.flatten(1), dim=1).shape[1] > 20  # many leaves of different colours


def test_file_source_and_grayscale(tmp_path):
    arr = (np.random.default_rng(0).random((80, 120, 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "src.jpg")
    img = load_image(ImageSourceConfig(uri=str(tmp_path / "src.jpg"), size=32, channels=1))
    assert img.shape == (1, 80, 120)


@pytest.mark.parametrize("kind", ["uint16", "float32", "int32"])
def test_deep_images_are_scaled_not_clipped(tmp_path, kind):
    """A 16-bit PNG, a float TIFF in [0, 1] and a 32-bit integer TIFF holding 16-bit values keep their tones:
    PIL's own convert clips them at 255, which turns a dark-to-bright ramp nearly white."""
    ramp = np.tile(np.linspace(0, 1, 64), (32, 1))  # (32, 64), left black, right white
    if kind == "float32":
        path, arr = tmp_path / "ramp.tif", ramp.astype(np.float32)
    else:
        path, arr = tmp_path / ("ramp.png" if kind == "uint16" else "ramp.tif"), (ramp * 65535).astype(kind)
    Image.fromarray(arr).save(path)
    for channels in (1, 3):
        img = load_image(ImageSourceConfig(uri=str(path), size=16, channels=channels))
        assert img.shape == (channels, 32, 64)
        assert img[:, :, 0].max() < 0.02 and img[:, :, -1].min() > 0.98
        assert img.mean().item() == pytest.approx(0.5, abs=0.02)
    shown = read_image(path, size=16, channels=1, grid=True)  # what `aip predict` gives the student
    assert shown.shape == (1, 16, 16) and shown.mean().item() == pytest.approx(0.5, abs=0.03)


def test_a_phone_photo_is_read_upright(tmp_path):
    """A JPEG whose EXIF orientation says "rotate 90 degrees" (how phones save portrait photos) is read as a
    viewer shows it, for the source and for `aip predict`."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # stored wide: left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(arr).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    img = load_image(ImageSourceConfig(uri=str(tmp_path / "phone.jpg"), size=16))
    assert img.shape == (3, 40, 20)  # shown tall
    assert img[:, :18].mean() > 0.9 and img[:, 22:].mean() < 0.1  # the white half on top
    shown = read_image(tmp_path / "phone.jpg", size=16, channels=3, grid=True)
    assert shown[:, :7].mean() > 0.9 and shown[:, 9:].mean() < 0.1


def test_large_sources_are_resized_to_max_side(tmp_path):
    Image.fromarray(np.tile(np.arange(900, dtype=np.uint8)[None, :, None], (300, 1, 3))).save(tmp_path / "wide.png")
    img = load_image(ImageSourceConfig(uri=str(tmp_path / "wide.png"), size=32, max_side=450))
    assert img.shape == (3, 150, 450)
    plain = load_image_uri(str(tmp_path / "wide.png"), size=32, max_side=450, levels="stretch")
    assert torch.equal(plain, img)  # plain arguments


def test_source_errors_are_one_line(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    Image.new("RGB", (10, 10)).save(tmp_path / "tiny.png")
    cases = {
        str(tmp_path / "missing.jpg"): "does not exist",
        str(tmp_path / "broken.png"): "cannot read source image .*broken.png .*; give a PNG",
        str(tmp_path / "tiny.png"): "smaller than source.size",
        "skimage:not_a_photo": "not a scikit-image photo",
        "synthetic:clouds": "unknown synthetic source",
        "http://127.0.0.1:9/nothing.png": "could not download",
    }
    for uri, message in cases.items():
        with pytest.raises(AipError, match=message) as e:
            load_image(ImageSourceConfig(uri=uri, size=32))
        assert "\n" not in str(e.value)


def test_url_source_is_downloaded_once_into_the_cache(tmp_path, isolated_cache):
    red = np.zeros((48, 64, 3), np.uint8)
    red[:, :56] = (200, 20, 20)  # a red picture with a black edge
    Image.fromarray(red).save(tmp_path / "remote.png")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/remote.png"
        img = load_image(ImageSourceConfig(uri=url, size=32))
        assert img.shape == (3, 48, 64) and img[0].mean() > 0.7
        cached = list((isolated_cache / "sources").iterdir())
        assert len(cached) == 1 and cached[0].name.endswith("remote.png")
    finally:
        server.shutdown()
    assert load_image(ImageSourceConfig(uri=url, size=32)).shape == (3, 48, 64)  # served from the cache


def test_color_jitter_identity_at_zero_and_per_sample_factors():
    x = torch.rand(8, 3, 16, 16)
    assert torch.allclose(ColorJitter(0, 0, 0, 0, p=1.0)(x), x, atol=1e-6)
    assert torch.equal(ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.0)(x), x)
    same = x[:1].expand(8, -1, -1, -1).contiguous()
    out = ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0)(same)
    assert out.flatten(1).std(0).mean() > 0.01  # each sample got its own factors
    grey = torch.rand(4, 1, 16, 16)
    assert ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0)(grey).shape == grey.shape


def test_color_jitter_brightness_matches_hand_computation():
    torch.manual_seed(0)
    x = torch.full((1, 3, 2, 2), 0.5)
    out = ColorJitter(0.4, 0, 0, 0, p=1.0)(x)
    torch.manual_seed(0)
    torch.rand(1)  # the apply-or-not draw
    factor = torch.empty(1).uniform_(0.6, 1.4)
    assert torch.allclose(out, (x * factor).clamp(0, 1), atol=1e-5)


@pytest.mark.parametrize("crop", ["rrc", "pad", "none"])
def test_augmenter_keeps_shape_and_range(crop):
    aug = ImageAugmenter(ImageAugmentConfig(crop=crop), size=32, channels=3)
    v = sampler().sample(16)
    out = aug(v)
    assert out.shape == v.shape and 0 <= out.min() and out.max() <= 1
    assert not torch.equal(out, v)


def _plain(**kw) -> ImageSourceConfig:
    """No random geometry or colour: the view is the centre 1/sqrt(2) of the whole image."""
    base = dict(size=16, init_crop=0, scale=(1.0, 1.0), ratio=(1.0, 1.0), degrees=0, shear=0, jitter_p=0)
    return ImageSourceConfig(**{**base, **kw})


def _ramp() -> torch.Tensor:
    ramp = torch.linspace(0, 1, 64)
    return torch.stack([ramp[None, :].expand(64, 64), ramp[:, None].expand(64, 64), torch.full((64, 64), 0.3)])


def test_folded_horizontal_flip_mirrors_the_view_exactly():
    cfg = _plain()
    torch.manual_seed(0)
    a = ImageViewSampler(_ramp(), cfg, device=CPU).sample(4)
    torch.manual_seed(0)
    b = ImageViewSampler(_ramp(), cfg, device=CPU, crop=ImageAugmentConfig(crop="none", hflip=1.0)).sample(4)
    assert torch.equal(a.flip(-1), b)


def test_folded_random_resized_crop_zooms_into_the_view():
    full = ImageViewSampler(_ramp(), _plain(), device=CPU).sample(8)
    crop = ImageAugmentConfig(crop="rrc", crop_scale=(0.25, 0.25), hflip=0.0)
    zoomed = ImageViewSampler(_ramp(), _plain(), device=CPU, crop=crop).sample(8)
    span_full = full[:, 0].amax((-1, -2)) - full[:, 0].amin((-1, -2))  # the red channel ramps left to right
    span_zoom = zoomed[:, 0].amax((-1, -2)) - zoomed[:, 0].amin((-1, -2))
    # a crop of a quarter of the area (aspect 3/4..4/3) covers about half the width
    assert ((span_zoom / span_full) < 0.65).all() and ((span_zoom / span_full) > 0.35).all()


def test_folded_pad_crop_shifts_by_whole_pixels_onto_black():
    crop = ImageAugmentConfig(crop="pad", pad=4, hflip=0.0)
    v = ImageViewSampler(torch.ones(3, 64, 64), _plain(size=32), device=CPU, crop=crop).sample(64)
    black_cols = (v[:, 0] == 0).all(1).sum(-1)  # fully black columns per view: the horizontal shift
    assert black_cols.max() <= 4 and black_cols.float().mean() > 0.5
    sharp = (v < 1e-5) | (v > 1 - 1e-5)
    assert sharp.all()  # whole-pixel shifts: no blur at the padding edge


def test_modality_folds_geometry_into_the_sampler_except_for_dataset_views(tiny_recipe):
    from aip import recipe as R
    from modalities.image import modality

    r = R.load(tiny_recipe)
    assert modality.sampler(r, device=CPU).crop == r.augment
    assert not any("Crop" in type(op).__name__ for op in modality.augmenter(r, device=CPU).ops)
    r_data = R.load(tiny_recipe, ["source.uri='dataset:train'"])
    assert any("Crop" in type(op).__name__ for op in modality.augmenter(r_data, device=CPU).ops)


def test_solarize_inverts_bright_pixels_out_of_place():
    from modalities.image.augment import Solarize

    x = torch.tensor([0.2, 0.6, 0.9]).view(1, 3, 1, 1).repeat(2, 1, 1, 1)
    y = Solarize(1.0)(x)
    assert torch.allclose(y[:, :, 0, 0], torch.tensor([0.2, 0.4, 0.1]).expand(2, 3))
    assert torch.equal(x[0, :, 0, 0], torch.tensor([0.2, 0.6, 0.9]))  # the input is untouched
    assert torch.equal(Solarize(0.0)(x), x)


def test_solarize_reaches_p_of_the_views():
    from modalities.image.augment import Solarize

    torch.manual_seed(0)
    x = torch.full((4000, 1, 2, 2), 0.75)
    inverted = (Solarize(0.3)(x) == 0.25).all(-1).all(-1)[:, 0]
    assert abs(inverted.float().mean().item() - 0.3) < 0.03  # 0.3 within about 4 standard errors
    assert torch.equal(Solarize(0.3)(torch.full((50, 1, 2, 2), 0.5)), torch.full((50, 1, 2, 2), 0.5))  # not above


def test_grayscale_joins_the_colour_matrix():
    x = torch.rand(6, 3, 8, 8)
    g = ColorJitter(0, 0, 0, 0, p=0.0, grayscale_p=1.0)(x)
    luma = (x * torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]).sum(1, keepdim=True)
    torch.testing.assert_close(g, luma.expand_as(x), atol=1e-5, rtol=0)
    assert torch.equal(ColorJitter(0, 0, 0, 0, p=0.0, grayscale_p=0.0)(x), x)
    mixed = ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0, grayscale_p=0.5)(x.repeat(20, 1, 1, 1))
    is_grey = (mixed.std(1) < 1e-5).flatten(1).all(1)
    assert 0 < is_grey.sum() < len(is_grey)  # about half of the samples


@pytest.mark.parametrize(("mode", "padding"), [("constant", "zeros"), ("replicate", "border")])
def test_one_sample_of_the_atlas_equals_sampling_each_pyramid_level(mode, padding):
    from modalities.image.atlas import atlas as pack
    from modalities.image.atlas import pyramid

    torch.manual_seed(0)
    levels = pyramid(torch.rand(2, 3, 100, 140), 12)  # two frames
    assert len(levels) >= 3
    atlas, maps = pack(levels, mode=mode)
    assert atlas.shape[:2] == (2, 3)
    for k, lev in enumerate(levels):
        h, w = lev.shape[-2:]
        # coordinates inside the level and up to one pixel outside it (where the zero padding shows)
        grid = torch.rand(1, 9, 11, 2) * 2 - 1
        grid = grid * torch.tensor([1 + 2 / w, 1 + 2 / h])
        grid = grid.expand(2, -1, -1, -1)
        direct = F.grid_sample(lev, grid, mode="bilinear", padding_mode=padding, align_corners=False)
        sx, sy, tx, ty = maps[k].float()
        moved = torch.stack([grid[..., 0] * sx + tx, grid[..., 1] * sy + ty], -1)
        via_atlas = F.grid_sample(atlas, moved, mode="bilinear", padding_mode=padding, align_corners=False)
        assert torch.allclose(direct, via_atlas, atol=1e-4), k


def test_an_image_over_the_decompression_bomb_limit_is_a_one_line_error(tmp_path, monkeypatch):
    """PIL refuses images of more than twice MAX_IMAGE_PIXELS (a decompression-bomb guard); the source, `aip
    predict` and image datasets say so in one line with the fix, instead of PIL's traceback. The limit is
    lowered here so that a small file stands in for a 200-megapixel one."""
    from modalities.image.datasets import _FileImages

    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for read in (lambda p: load_image(ImageSourceConfig(uri=str(p), size=16)),
                 lambda p: read_image(p, size=16, channels=3, grid=True),
                 lambda p: _FileImages([str(p)], [0], 3, lambda im: im)[0]):
        with pytest.raises(AipError, match=r"huge.png is too large to decode \(Image size \(10000 pixels\) exceeds "
                                           r"limit of 2000 pixels\); downscale it first"):
            read(tmp_path / "huge.png")


def test_a_flat_source_image_is_a_one_line_error(tmp_path):
    """A blank, one-colour or fully transparent picture gives views that are all one colour: nothing for the
    teacher to tell apart. One visible pixel of difference is enough to be accepted."""
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(tmp_path / "blank.png")
    Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    Image.new("RGB", (40, 40), (10, 200, 30)).save(tmp_path / "green.png")
    for name, level in (("blank.png", "200/200/200"), ("clear.png", "0/0/0"), ("green.png", "10/200/30")):
        with pytest.raises(AipError, match=rf"source image .*{name} is one flat colour \(every pixel {level} of "
                                           r"255\); use a picture with something in it"):
            load_image(ImageSourceConfig(uri=str(tmp_path / name), size=16))
    dot = np.full((40, 40, 3), 200, np.uint8)
    dot[20, 20] = 0
    Image.fromarray(dot).save(tmp_path / "dot.png")
    assert load_image(ImageSourceConfig(uri=str(tmp_path / "dot.png"), size=16)).shape == (3, 40, 40)


def test_a_dark_or_washed_out_photo_is_stretched_to_full_range(tmp_path):
    """The same photo under-exposed (15 % of its brightness) or washed out (a fifth of its contrast) gives the
    source a well-exposed one gives, up to 8-bit rounding; ``levels = "keep"`` takes the pixels as they are."""
    from skimage import data

    photo = data.astronaut().astype(np.float32)
    for name, pixels in (("full", photo), ("dark", photo * 0.15), ("washed", 128 + (photo - 128) * 0.2)):
        Image.fromarray(pixels.round().astype(np.uint8)).save(tmp_path / f"{name}.png")
    cfg = ImageSourceConfig(uri=str(tmp_path / "full.png"), size=32)
    full = load_image(cfg)
    assert float(full.amin()) == 0 and float(full.amax()) == 1
    for name in ("dark", "washed"):
        img = load_image(ImageSourceConfig(uri=str(tmp_path / f"{name}.png"), size=32))
        assert float((img - full).abs().mean()) < 0.01, name
        kept = load_image(ImageSourceConfig(uri=str(tmp_path / f"{name}.png"), size=32, levels="keep"))
        assert float(kept.amax()) < (0.61 if name == "washed" else 0.16)
    grey = load_image(ImageSourceConfig(uri=str(tmp_path / "dark.png"), size=32, channels=1))
    assert grey.shape[0] == 1 and float(grey.amax()) == 1


def test_the_stretch_is_one_map_for_all_channels_and_spares_synthetic_pictures():
    from modalities.image.source import stretch_levels

    img = torch.rand(3, 64, 64) * 0.3 + 0.1
    out = stretch_levels(img.clone())
    inside = (out > 0) & (out < 1)  # where no channel was clipped, one affine map takes img to out
    scale = (out[inside] - out[inside].mean()) / (img[inside] - img[inside].mean())
    assert float(scale.std()) < 1e-3
    cfg = ImageSourceConfig(uri="synthetic:dead_leaves", size=32, synthetic_side=64)
    assert torch.equal(load_image(cfg), load_image(ImageSourceConfig(**{**cfg.__dict__, "levels": "keep"})))
