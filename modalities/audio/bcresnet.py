"""BC-ResNet (Kim et al., "Broadcasted Residual Learning for Efficient Keyword Spotting", Interspeech 2021).

Blocks keep 2-D (frequency x time) features only where they are cheap: a 3x1 depthwise convolution over
frequency with SubSpectral normalisation, then the result is averaged over frequency, mixed over time by a
dilated 1x3 depthwise convolution and a 1x1 convolution, and broadcast back onto the 2-D features as a
residual. ``width`` scales every channel count: 1, 1.5, 2, 3, 6, 8 are the paper's BC-ResNet-1 ... -8.
Input: log-mel ``(B, 1, n_mels, frames)``; output: logits.
"""

from __future__ import annotations

from torch import Tensor, nn


class SubSpectralNorm(nn.Module):
    """BatchNorm with separate statistics for each of ``groups`` frequency sub-bands."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.bn = nn.BatchNorm2d(channels * groups)

    def forward(self, x: Tensor) -> Tensor:
        b, c, f, t = x.shape
        return self.bn(x.reshape(b, c * self.groups, f // self.groups, t)).reshape(b, c, f, t)


def _subbands(freq: int, wanted: int) -> int:
    """The largest number of sub-bands <= ``wanted`` that divides ``freq`` bins evenly."""
    return max(s for s in range(1, wanted + 1) if freq % s == 0)


class BCBlock(nn.Module):
    """One broadcasted residual block; ``transition`` blocks change the channel count (no identity path)."""

    def __init__(self, cin: int, cout: int, *, freq: int, stride: int, dilation: int, subbands: int,
                 dropout: float) -> None:
        super().__init__()
        self.transition = cin != cout
        self.pre = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()) \
            if self.transition else nn.Identity()
        self.freq_dw = nn.Conv2d(cout, cout, (3, 1), stride=(stride, 1), padding=(1, 0), groups=cout, bias=False)
        self.ssn = SubSpectralNorm(cout, _subbands(freq, subbands))
        self.temporal = nn.Sequential(
            nn.Conv2d(cout, cout, (1, 3), padding=(0, dilation), dilation=(1, dilation), groups=cout, bias=False),
            nn.BatchNorm2d(cout), nn.SiLU(), nn.Conv2d(cout, cout, 1, bias=False), nn.Dropout2d(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        aux = self.ssn(self.freq_dw(self.pre(x)))  # (B, C, F, T): frequency-wise features
        out = self.temporal(aux.mean(2, keepdim=True))  # (B, C, 1, T): time-wise, broadcast back below
        out = out + aux if self.transition else out + aux + x
        return out.relu()


class BCResNet(nn.Module):
    """BC-ResNet-``width`` for ``n_mels`` mel bins (stages 2, 2, 4, 4 blocks; time dilations 1, 2, 4, 8)."""

    def __init__(self, num_classes: int, *, n_mels: int = 64, width: float = 1.0, subbands: int = 5,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if not width > 0 or subbands < 1:  # also catches a width of nan
            raise ValueError(f"width must be positive and subbands at least 1, got {width!r} and {subbands!r}")
        c = [max(1, round(k * width)) for k in (16, 8, 12, 16, 20, 32)]
        self.stem = nn.Sequential(nn.Conv2d(1, c[0], 5, stride=(2, 1), padding=2, bias=False),
                                  nn.BatchNorm2d(c[0]), nn.ReLU())
        freq = (n_mels + 1) // 2
        blocks: list[nn.Module] = []
        cin = c[0]
        for cout, n, stride, dil in zip(c[1:5], (2, 2, 4, 4), (1, 2, 2, 1), (1, 2, 4, 8)):
            for i in range(n):
                s = stride if i == 0 else 1
                freq = (freq + 1) // 2 if s == 2 else freq  # bins after this block's frequency convolution
                blocks.append(BCBlock(cin, cout, freq=freq, stride=s, dilation=dil, subbands=subbands,
                                      dropout=dropout))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Conv2d(c[4], c[4], (5, 5), padding=(2, 2), groups=c[4], bias=False),
            nn.Conv2d(c[4], c[5], 1, bias=False), nn.BatchNorm2d(c[5]), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c[5], num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)))
