"""Video models: every name builds and maps the recipe's clips to logits; pretrained PyTorchVideo hub weights load
from a pre-filled torch.hub cache through the real loading code; resampling to a teacher's own input; errors."""

from __future__ import annotations

import pytest
import torch

from aip.errors import AipError
from modalities.video import models

FAST = {"cnn3d", "x3d", "x3d_xs", "r3d_18", "mc3_18", "r2plus1d_18"}


@pytest.mark.parametrize("arch", models.names())
def test_every_model_builds_and_gives_logits(arch):
    """On the meta device (no memory, no weights) for the large ones; really run the small ones on 4 x 32 px."""
    if arch in FAST:
        model = models.build(arch, num_classes=5, frames=4, size=32, pretrained=False)
        out = model.eval()(torch.rand(2, 3, 4, 32, 32))
        assert out.shape == (2, 5) and torch.isfinite(out).all()
        return
    with torch.device("meta"):
        model = models.build(arch, num_classes=5, frames=4, size=160, pretrained=False)
        out = model.eval()(torch.empty(2, 3, 4, 160, 160))
    assert out.shape == (2, 5)


def test_x3d_student_takes_width_and_depth_factors():
    with torch.device("meta"):
        small = models.build("x3d", num_classes=400, frames=4, size=160, pretrained=False)
        expanded = models.build("x3d_xs_e", num_classes=400, frames=4, size=160, pretrained=False)
        custom = models.build("x3d", num_classes=400, frames=4, size=160, pretrained=False,
                              kwargs={"width_factor": 5.0, "depth_factor": 3.0})
    count = [sum(p.numel() for p in m.parameters()) for m in (small, expanded, custom)]
    assert count[1] == count[2] > 3 * count[0]


def test_pretrained_hub_teacher_loads_from_the_torch_hub_cache(tmp_path, monkeypatch):
    """Pre-fill $TORCH_HOME/hub/checkpoints/X3D_XS.pyth as PyTorchVideo publishes it; the real loader reads it."""
    from pytorchvideo.models.hub import x3d_xs

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    reference = x3d_xs(pretrained=False)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save({"model_state": reference.state_dict()}, tmp_path / "hub" / "checkpoints" / "X3D_XS.pyth")
    teacher = models.build("x3d_xs", num_classes=400, frames=8, size=96, pretrained=True).eval()
    assert (teacher.frames, teacher.size) == (4, 160)  # its own input: 4 frames of 160 px
    for k, v in reference.state_dict().items():
        assert torch.equal(teacher.model.state_dict()[k], v), k
    clips = torch.rand(2, 3, 8, 96, 96)
    logits = teacher(clips)  # resampled to 4 x 160 x 160 inside
    assert logits.shape == (2, 400)
    assert not torch.allclose(logits.sum(-1), torch.ones(2))  # logits, not the hub head's softmax
    # the same as feeding the model the resampled, normalised clip by hand
    idx = torch.tensor([0, 2, 5, 7])
    frames = clips[:, :, idx].transpose(1, 2).reshape(8, 3, 96, 96)
    frames = torch.nn.functional.interpolate(frames, size=(160, 160), mode="bilinear", align_corners=False)
    manual = frames.reshape(2, 4, 3, 160, 160).transpose(1, 2)
    reference.blocks[-1].activation = None
    assert torch.allclose(logits, reference.eval()((manual - 0.45) / 0.225), atol=1e-4)


def test_pretrained_without_cache_or_network_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("no network\nsecond line")))
    import pytorchvideo.models.hub.x3d as hub_x3d

    monkeypatch.setattr(hub_x3d, "load_state_dict_from_url", torch.hub.load_state_dict_from_url)
    with pytest.raises(AipError, match=r"could not fetch pretrained weights for 'x3d_xs' \(no network\)") as e:
        models.build("x3d_xs", num_classes=400, frames=4, size=160, pretrained=True)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"arch": "x3d_xz"}, r"unknown video model 'x3d_xz' \(did you mean 'x3d_xs'\?\); known: cnn3d, mc3_18, "),
    ({"arch": "x3d_xs", "pretrained": True, "num_classes": 101}, r"400 classes\) but the dataset has 101"),
    ({"arch": "cnn3d", "pretrained": True}, r"'cnn3d' has no pretrained weights"),
    ({"arch": "x3d", "size": 16}, r"needs clips of at least 32 px"),
    ({"arch": "x3d", "kwargs": {"input_clip_length": 8}}, r"'input_clip_length' cannot be set in kwargs"),
    ({"arch": "cnn3d", "kwargs": {"depth": 3}}, r"bad kwargs for model 'cnn3d'"),
    ({"arch": "cnn3d", "kwargs": {"width": 0}}, r"'cnn3d': width must be a positive integer, got 0"),
    ({"arch": "cnn3d", "kwargs": {"width": float("nan")}}, r"'cnn3d': width must be a positive integer, got nan"),
    ({"arch": "x3d", "kwargs": {"width_factor": float("nan")}}, r"bad kwargs for model 'x3d' \(cannot convert"),
    ({"arch": "r2plus1d_18", "pretrained": True, "num_classes": 400, "weights": "IMAGENET"},
     r"has no weights 'IMAGENET'; choose one of: KINETICS400_V1"),
])
def test_bad_models_give_one_line_errors(kwargs, message):
    args = {"num_classes": 10, "frames": 4, "size": 32, "pretrained": False, **kwargs}
    with pytest.raises(AipError, match=message) as e:
        models.build(args.pop("arch"), **args)
    assert "\n" not in str(e.value)


def test_fixed_input_models_resample_the_clip():
    with torch.device("meta"):
        mvit = models.build("mvit_v2_s", num_classes=3, frames=4, size=160, pretrained=False)
    assert (mvit.frames, mvit.size) == (16, 224)
    tiny = models.build("cnn3d", num_classes=3, frames=4, size=32, pretrained=False)
    assert (tiny.frames, tiny.size) == (None, None)
