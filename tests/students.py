"""Fake run directories, saved the way the trainer saves them, with one tiny student per modality."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from aip import files
from aip.recipe import from_dict
from aip.registry import load_modality

CLASSES = ["alpha", "beta", "gamma"]

RECIPES = {
    "image": {"modality": "image", "name": "tiny-image", "source": {"uri": "skimage:astronaut", "size": 16},
              "teacher": {"kind": "train", "arch": "cnn", "kwargs": {"width": 4}},
              "student": {"arch": "cnn", "kwargs": {"width": 4}}, "eval": {"dataset": "imagefolder"}},
    "video": {"modality": "video", "name": "tiny-video",
              "source": {"uri": "skimage:astronaut", "size": 16, "frames": 4, "test_short_side": 20},
              "augment": {"short_side": [16, 20]},
              "teacher": {"kind": "train", "arch": "cnn3d", "kwargs": {"width": 4}},
              "student": {"arch": "cnn3d", "kwargs": {"width": 4}}, "eval": {"dataset": "videofolder"}},
    "audio": {"modality": "audio", "name": "tiny-audio", "source": {"uri": "synthetic:noise", "window": 0.25},
              "teacher": {"kind": "train", "arch": "cnn", "kwargs": {"width": 4, "n_mels": 16}},
              "student": {"arch": "cnn", "kwargs": {"width": 4, "n_mels": 16}}, "eval": {"dataset": "audiofolder"}},
}


def fake_run(root: Path, modality: str, *, classes: bool = True, metrics: dict | None = None) -> Path:
    """``root/modality``: a run directory holding ``best.pt`` of a randomly initialised tiny student, as
    :func:`aip.trainer.fit` writes it (``classes=False``: as older runs did, without class names)."""
    recipe = from_dict(RECIPES[modality], check_files=False)
    torch.manual_seed(0)
    net = load_modality(modality).model(recipe.student, recipe=recipe, num_classes=len(CLASSES), pretrained=False)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode differs from train mode
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    run = root / modality
    state = {"student": net.state_dict(), "recipe": recipe.to_dict(), "epoch": 1, "metrics": {"top1": 50.0}}
    if classes:
        state |= {"classes": CLASSES, "num_classes": len(CLASSES)}
    files.save_torch(state, run / "best.pt")
    files.write_text(json.dumps(metrics or {"recipe": recipe.name, "dataset": recipe.eval.dataset,
                                            "source": recipe.source.uri, "student": {"top1": 61.5, "top5": 99.0},
                                            "teacher": {"top1": 80.0, "top5": 100.0}, "steps": 10}),
                     run / "metrics.json")
    (run / "recipe.toml").write_text(recipe.to_toml())
    return run


def example(modality: str, batch: int = 2) -> torch.Tensor:
    """A batch of valid inputs for the tiny students of :data:`RECIPES`."""
    g = torch.Generator().manual_seed(1)
    shapes = {"image": (3, 16, 16), "video": (3, 4, 16, 16), "audio": (1, 4000)}
    x = torch.rand(batch, *shapes[modality], generator=g)
    return x * 2 - 1 if modality == "audio" else x
