"""The ZSSR network (Shocher et al., CVPR 2018, Sec. 4): a plain stack of 3x3 convolutions on the
bicubically upscaled image, learning only the residual."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class ZSSRNet(nn.Module):
    """``depth`` 3x3 convolutions of ``width`` channels, zero padding, no biases, ReLU after all
    but the last; ``forward(x) = convs(x) + x`` for x (N, channels, H, W), the input already
    interpolated to the output size. About 225k parameters at depth 8, width 64."""

    def __init__(self, channels: int = 3, depth: int = 8, width: int = 64, init_variance: float = 0.1,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        sizes = [channels] + [width] * (depth - 1) + [channels]
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
                                   for c_in, c_out in zip(sizes[:-1], sizes[1:]))
        with torch.no_grad():
            for conv in self.convs:
                # The authors' initialiser: N(0, init_variance / fan_in).
                fan_in = conv.in_channels * 9
                conv.weight.normal_(0.0, math.sqrt(init_variance / fan_in), generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for conv in self.convs[:-1]:
            y = F.relu(conv(y), inplace=True)
        return self.convs[-1](y) + x

    @property
    def receptive_radius(self) -> int:
        """Pixels on each side that influence one output pixel (one per 3x3 layer)."""
        return len(self.convs)
