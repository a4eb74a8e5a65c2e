"""The ZSSR networks.

* ``ZSSRNet`` - the paper's (Shocher et al., CVPR 2018, Sec. 4): a plain stack of 3x3 convolutions
  on the bicubically upscaled image, learning only the residual. Every layer runs at the output
  resolution.
* ``SubPixelZSSRNet`` - the same stack run at the *input* resolution, ending in a sub-pixel
  convolution (Shi et al., CVPR 2016, "ESPCN", Sec. 2.2: a convolution to C * s^2 channels, then a
  pixel shuffle) that writes the residual at s times the size; the bicubic residual connection is
  kept. Each layer costs 1/s^2 of the paper's, and its receptive field is s times wider in output
  pixels.

Both answer ``sr(lr, scale, size)``: the network's SR of ``lr`` (N, C, h, w) at ``scale``, shape
(N, C, *size), unclipped. ``size`` is at most (h * s, w * s) per axis (MATLAB's ceil(h * s) for an
integer s), so the sub-pixel output is cut at the bottom and right, where output pixel s * i + j
(j < s) belongs to input pixel i, as block-centre sampling has it.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from zssr.resize import imresize


def _conv(c_in: int, c_out: int, init_variance: float, generator: torch.Generator | None) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    with torch.no_grad():
        # The authors' initialiser: N(0, init_variance / fan_in).
        conv.weight.normal_(0.0, math.sqrt(init_variance / (c_in * 9)), generator=generator)
    return conv


class ZSSRNet(nn.Module):
    """``depth`` 3x3 convolutions of ``width`` channels, zero padding, no biases, ReLU after all
    but the last; ``forward(x) = convs(x) + x`` for x (N, channels, H, W), the input already
    interpolated to the output size. About 225k parameters at depth 8, width 64."""

    def __init__(self, channels: int = 3, depth: int = 8, width: int = 64, init_variance: float = 0.1,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        sizes = [channels] + [width] * (depth - 1) + [channels]
        self.convs = nn.ModuleList(_conv(c_in, c_out, init_variance, generator)
                                   for c_in, c_out in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for conv in self.convs[:-1]:
            y = F.relu(conv(y), inplace=True)
        return self.convs[-1](y) + x

    def sr(self, lr: torch.Tensor, scale: int, size: Sequence[int]) -> torch.Tensor:
        return self(imresize(lr, scale, size))

    @property
    def receptive_radius(self) -> int:
        """Pixels on each side that influence one output pixel (one per 3x3 layer)."""
        return len(self.convs)


class SubPixelZSSRNet(nn.Module):
    """``depth - 1`` 3x3 convolutions of ``width`` channels with ReLUs at the input resolution,
    then one 3x3 convolution to ``channels * s^2`` per SR factor s in ``scales`` (the gradual x4
    shares the body between its stages and has a head per stage) and a pixel shuffle; plus the
    bicubic upscale of the input. Zero padding, no biases, the authors' initialiser. About 204k
    parameters at depth 8, width 64, scales (2,)."""

    def __init__(self, channels: int = 3, depth: int = 8, width: int = 64, init_variance: float = 0.1,
                 generator: torch.Generator | None = None, scales: Sequence[int] = (2,)) -> None:
        super().__init__()
        sizes = [channels] + [width] * (depth - 1)
        self.body = nn.ModuleList(_conv(c_in, c_out, init_variance, generator)
                                  for c_in, c_out in zip(sizes[:-1], sizes[1:]))
        self.heads = nn.ModuleDict({str(s): _conv(width, channels * s * s, init_variance, generator)
                                    for s in scales})

    def residual(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        """The learned part at (N, C, h * s, w * s)."""
        y = lr
        for conv in self.body:
            y = F.relu(conv(y), inplace=True)
        return F.pixel_shuffle(self.heads[str(scale)](y), scale)

    def sr(self, lr: torch.Tensor, scale: int, size: Sequence[int]) -> torch.Tensor:
        height, width = size
        return self.residual(lr, scale)[..., :height, :width] + imresize(lr, scale, size)

    @property
    def receptive_radius(self) -> int:
        """Input pixels on each side that influence one output block (one per 3x3 layer)."""
        return len(self.body) + 1


def build_network(body: str, channels: int, depth: int, width: int, init_variance: float,
                  generator: torch.Generator | None, scales: Sequence[int]) -> nn.Module:
    """``body="hr"``: the paper's ``ZSSRNet``; ``"lr"``: ``SubPixelZSSRNet`` for ``scales``."""
    if body == "hr":
        return ZSSRNet(channels, depth, width, init_variance, generator)
    return SubPixelZSSRNet(channels, depth, width, init_variance, generator, scales)
