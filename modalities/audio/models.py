"""Audio classifiers by name: a log-mel front end followed by a network, behind one factory, :func:`build`.

Every model is an :class:`AudioClassifier`: ``(B, 1, samples)`` waveform -> log-mel ``(B, 1, n_mels, frames)``
(``torchaudio.transforms.MelSpectrogram``, natural log, standardised with fixed constants) -> network ->
logits. The front end lives inside the model, so teacher and student may use different ones: the keys
``n_mels``, ``win_ms``, ``hop_ms``, ``n_fft``, ``f_min``, ``f_max`` of ``spec.kwargs`` set it (defaults: 64 mels,
25 ms window, 10 ms hop, 60-7800 Hz, the COLA front end the paper's authors most likely used); the other keys
go to the network. Networks: ``bcresnet`` (``width`` kwarg) and the paper's sizes ``bcresnet1`` ...
``bcresnet8``, ``cnn`` (a small log-mel CNN, ``width`` kwarg) and ``timm:NAME`` (any timm image model on the
one-channel log-mel image, e.g. ``timm:efficientnet_b0``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from aip.errors import AipError
from aip.registry import Registry
from modalities.audio.bcresnet import BCResNet

Builder = Callable[..., nn.Module]
#: ``builder(num_classes, n_mels, **kwargs) -> nn.Module`` taking log-mels ``(B, 1, n_mels, frames)``
NETWORKS: Registry[Builder] = Registry("audio model")
FRONT_END_KEYS = ("n_mels", "win_ms", "hop_ms", "n_fft", "f_min", "f_max")
#: log-mel standardisation: about the mean and spread of log mel power of speech at -25 dBFS
LOG_MEL_MEAN, LOG_MEL_STD = -7.0, 4.0


class LogMel(nn.Module):
    """``(B, 1, samples)`` -> standardised log-mel power ``(B, 1, n_mels, frames)``."""

    def __init__(self, *, rate: int, n_mels: int = 64, win_ms: float = 25.0, hop_ms: float = 10.0,
                 n_fft: int = 0, f_min: float = 60.0, f_max: float = 7800.0) -> None:
        super().__init__()
        import torchaudio.transforms as T

        win = round(rate * win_ms / 1000)
        hop = round(rate * hop_ms / 1000)
        if not (0 < hop <= win) or n_mels < 8 or not (0 <= f_min < f_max <= rate / 2):
            raise AipError(f"bad log-mel front end (n_mels={n_mels}, win_ms={win_ms}, hop_ms={hop_ms}, "
                           f"f_min={f_min}, f_max={f_max} at {rate} Hz): need 0 < hop <= window, n_mels >= 8, "
                           "0 <= f_min < f_max <= rate / 2")
        n_fft = n_fft or 1 << (win - 1).bit_length()
        with torch.device("cpu"):  # its filter bank is computed eagerly, so not on the meta device of `aip check`
            self.mel = T.MelSpectrogram(sample_rate=rate, n_fft=n_fft, win_length=win, hop_length=hop,
                                        f_min=f_min, f_max=f_max, n_mels=n_mels, power=2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            spec = self.mel(x.float())  # (B, 1, n_mels, frames)
        return (torch.log(spec + 1e-6) - LOG_MEL_MEAN) / LOG_MEL_STD


class AudioClassifier(nn.Module):
    """A front end and a network: ``(B, 1, samples)`` waveforms -> logits ``(B, K)``."""

    def __init__(self, front: LogMel, net: nn.Module) -> None:
        super().__init__()
        self.front = front
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # (B, samples)
            x = x.unsqueeze(1)
        return self.net(self.front(x))


@NETWORKS.register("bcresnet")
def _bcresnet(num_classes: int, n_mels: int, **kwargs: Any) -> nn.Module:
    return BCResNet(num_classes, n_mels=n_mels, **kwargs)


def _bc_size(width: float) -> Builder:
    def build(num_classes: int, n_mels: int, **kwargs: Any) -> nn.Module:
        return BCResNet(num_classes, n_mels=n_mels, width=width, **kwargs)

    return build


for _w in (1, 1.5, 2, 3, 6, 8):
    NETWORKS.register(f"bcresnet{_w}")(_bc_size(float(_w)))


@NETWORKS.register("cnn")
def _cnn(num_classes: int, n_mels: int, *, width: int = 32, dropout: float = 0.1) -> nn.Module:  # noqa: ARG001
    """Four conv-BN-ReLU stages (width, 2x, 4x, 4x channels; 2x2 max pooling after the first three)."""

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    w = width
    return nn.Sequential(
        *block(1, w), nn.MaxPool2d(2), *block(w, 2 * w), nn.MaxPool2d(2), *block(2 * w, 4 * w), nn.MaxPool2d(2),
        *block(4 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
        nn.Linear(4 * w, num_classes),
    )


def names() -> list[str]:
    """Every model name a recipe can use (``timm:NAME`` stands for any timm model)."""
    return [*NETWORKS.names(), "timm:NAME (e.g. timm:efficientnet_b0)"]


def _timm(name: str, num_classes: int, *, pretrained: bool, kwargs: dict[str, Any]) -> nn.Module:
    import timm

    if name not in timm.list_models(pretrained=False) and name.split(".")[0] not in timm.list_models():
        raise AipError(f"timm has no model {name!r}; see timm.list_models() (e.g. timm:efficientnet_b0)")
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=1, **kwargs)
    except TypeError as e:
        raise AipError(f"timm:{name} does not take these kwargs ({e})") from None
    except (OSError, RuntimeError) as e:  # weights download failed
        raise AipError(f"could not load pretrained weights of timm:{name} ({str(e).splitlines()[0]}); "
                       "check the network, or train the model (teacher.kind = 'train')") from None


def build(arch: str, *, num_classes: int, rate: int, pretrained: bool = False,
          kwargs: dict[str, Any] | None = None) -> AudioClassifier:
    """The classifier named ``arch`` for ``num_classes`` classes on ``rate`` Hz waveforms.

    Raises:
        AipError: unknown name (the message lists the known ones), bad kwargs, or pretrained weights asked
            of an in-house network (none exist: train the teacher, or load a checkpoint).
    """
    kw = dict(kwargs or {})
    front_kw = {k: kw.pop(k) for k in FRONT_END_KEYS if k in kw}
    front = LogMel(rate=rate, **front_kw)
    n_mels = front.mel.n_mels
    if arch.startswith("timm:"):
        return AudioClassifier(front, _timm(arch[5:], num_classes, pretrained=pretrained, kwargs=kw))
    builder = NETWORKS.get(arch)
    if pretrained:
        raise AipError(f"there are no pretrained weights for the audio model {arch!r}; use teacher.kind = "
                       "'train' (aip teacher RECIPE) or 'checkpoint'")
    try:
        net = builder(num_classes, n_mels, **kw)
    except TypeError as e:
        raise AipError(f"audio model {arch!r} does not take these kwargs ({e}); front-end keys: "
                       f"{', '.join(FRONT_END_KEYS)}") from None
    return AudioClassifier(front, net)
