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
import torch.nn.functional as F
from torch import nn

from aip.errors import AipError, UsageError
from aip.registry import Registry
from modalities.audio.bcresnet import BCResNet

Builder = Callable[..., nn.Module]
#: ``builder(num_classes, n_mels, **kwargs) -> nn.Module`` taking log-mels ``(B, 1, n_mels, frames)``
NETWORKS: Registry[Builder] = Registry("audio model")
FRONT_END_KEYS = ("n_mels", "win_ms", "hop_ms", "n_fft", "f_min", "f_max")
#: log-mel standardisation: about the mean and spread of log mel power of speech at -25 dBFS
LOG_MEL_MEAN, LOG_MEL_STD = -7.0, 4.0
#: waveform samples per chunk of the log-mel front end on the CPU (16 one-second windows at 16 kHz): the
#: chunk's STFT (8-16 bytes per sample: a few MB) then stays in the cache
CPU_CHUNK_SAMPLES = 1 << 18


class LogMel(nn.Module):
    """``(B, 1, samples)`` -> standardised log-mel power ``(B, 1, n_mels, frames)``."""

    def __init__(self, *, rate: int, n_mels: int = 64, win_ms: float = 25.0, hop_ms: float = 10.0,
                 n_fft: int = 0, f_min: float = 60.0, f_max: float = 7800.0) -> None:
        super().__init__()
        import torchaudio.transforms as T

        win = round(rate * win_ms / 1000)
        hop = round(rate * hop_ms / 1000)
        if not (0 < hop <= win) or n_mels < 8 or not (0 <= f_min < f_max <= rate / 2):
            raise UsageError(f"bad log-mel front end (n_mels={n_mels}, win_ms={win_ms}, hop_ms={hop_ms}, "
                             f"f_min={f_min}, f_max={f_max} at {rate} Hz): need 0 < hop <= window, n_mels >= 8, "
                             "0 <= f_min < f_max <= rate / 2")
        n_fft = n_fft or 1 << (win - 1).bit_length()
        with torch.device("cpu"):  # its filter bank is computed eagerly, so not on the meta device of `aip check`
            self.mel = T.MelSpectrogram(sample_rate=rate, n_fft=n_fft, win_length=win, hop_length=hop,
                                        f_min=f_min, f_max=f_max, n_mels=n_mels, power=2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The same numbers as ``(log(self.mel(x) + 1e-6) - LOG_MEL_MEAN) / LOG_MEL_STD``, computed a chunk of
        windows at a time on the CPU (:data:`CPU_CHUNK_SAMPLES`), so each chunk's STFT stays in the cache
        between the transform, the power and the mel product; in one piece elsewhere, and when traced or
        compiled (an exported model keeps its batch size free)."""
        with torch.autocast(x.device.type, enabled=False):
            shape = x.shape
            flat = x.float().reshape(-1, shape[-1])
            whole = x.device.type != "cpu" or torch.compiler.is_compiling() or torch.jit.is_tracing()
            chunks = [flat] if whole else flat.tensor_split(-(-flat.numel() // CPU_CHUNK_SAMPLES))
            mel = torch.cat([self._log_mel(part) for part in chunks])  # (N, n_mels, frames)
        return mel.reshape(*shape[:-1], *mel.shape[-2:])

    def _log_mel(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, samples)`` -> standardised log-mel power ``(N, n_mels, frames)``. The power is re^2 + im^2 of
        the STFT's real view taken frame by frame, where torch.stft lays its bins out contiguously; the complex
        ``abs().pow(2)``, or a ``sum`` over the size-2 real/imaginary axis, costs several times more."""
        spec, fb = self.mel.spectrogram, self.mel.mel_scale.fb  # fb: (freqs, n_mels)
        stft = torch.stft(x, n_fft=spec.n_fft, hop_length=spec.hop_length, win_length=spec.win_length,
                          window=spec.window, center=spec.center, pad_mode=spec.pad_mode, normalized=False,
                          return_complex=True)  # (N, freqs, frames)
        parts = torch.view_as_real(stft.transpose(1, 2)).square()  # (N, frames, freqs, 2)
        mel = torch.matmul(parts[..., 0] + parts[..., 1], fb)  # (N, frames, n_mels)
        return ((torch.log(mel + 1e-6) - LOG_MEL_MEAN) / LOG_MEL_STD).transpose(1, 2)


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


class ConvNet(nn.Sequential):
    """A plain ``Sequential`` of conv-BN-ReLU(-max-pool) stages that, in eval mode, runs each stage fused and
    exactly equivalent: BatchNorm folded into the convolution, and the pooling moved before the affine map and
    the ReLU (exact because both are monotonic per channel; a channel whose BatchNorm scale is negative has its
    convolution negated first, so the pool takes its minimum). The frozen teacher, which labels
    ``view_pool`` x the student's batch every step, so touches each full-resolution activation once instead of
    three times. Training mode (the student) is the ordinary ``Sequential``; the state dict is the same."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        mods, i = list(self), 0
        while i < len(mods):
            m = mods[i]
            if (isinstance(m, nn.Conv2d) and i + 2 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d)
                    and isinstance(mods[i + 2], nn.ReLU)):
                bn = mods[i + 1]
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C,)
                shift = bn.bias - bn.running_mean * scale
                pool = mods[i + 3] if i + 3 < len(mods) and isinstance(mods[i + 3], nn.MaxPool2d) else None
                if pool is None:
                    x = F.relu_(F.conv2d(x, m.weight * scale[:, None, None, None], shift, m.stride, m.padding,
                                            m.dilation, m.groups))
                    i += 3
                    continue
                sign = torch.where(scale < 0, -1.0, 1.0).to(scale)
                y = pool(F.conv2d(x, m.weight * sign[:, None, None, None], None, m.stride, m.padding, m.dilation,
                                  m.groups))
                x = F.relu_(torch.addcmul(shift[:, None, None], y, (scale * sign)[:, None, None]))
                i += 4
                continue
            x = m(x)
            i += 1
        return x


@NETWORKS.register("cnn")
def _cnn(num_classes: int, n_mels: int, *, width: int = 32, dropout: float = 0.1) -> nn.Module:  # noqa: ARG001
    """Four conv-BN-ReLU stages (width, 2x, 4x, 4x channels; 2x2 max pooling after the first three)."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    w = width
    return ConvNet(
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
        raise UsageError(f"timm has no model {name!r}; see timm.list_models() (e.g. timm:efficientnet_b0)")
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=1, **kwargs)
    except TypeError as e:
        raise UsageError(f"timm:{name} does not take these kwargs ({e})") from None
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
        raise UsageError(f"there are no pretrained weights for the audio model {arch!r}; use teacher.kind = "
                         "'train' (aip teacher RECIPE) or 'checkpoint'")
    try:
        net = builder(num_classes, n_mels, **kw)
    except TypeError as e:
        raise UsageError(f"audio model {arch!r} does not take these kwargs ({e}); front-end keys: "
                         f"{', '.join(FRONT_END_KEYS)}") from None
    except ValueError as e:
        raise UsageError(f"bad kwargs for audio model {arch!r}: {e}") from None
    return AudioClassifier(front, net)
