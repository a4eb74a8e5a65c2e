"""The SRMD network (Zhang, Zuo and Zhang, "Learning a Single Convolutional Super-Resolution Network
for Multiple Degradations", CVPR 2018), laid out so that the official state dicts load strictly.

One ``nn.Sequential`` named ``model``: Conv3x3(in_nc -> 128) + ReLU, 10 x [Conv3x3(128 -> 128) +
ReLU], Conv3x3(128 -> 3 s^2), PixelShuffle(s). Biases everywhere, zero padding 1, no batch norm, no
residual connection. Keys ``model.{0,2,...,22}.{weight,bias}`` (OIHW).
"""
from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Mapping

import torch
from torch import nn

PCA_COMPONENTS = 15
FEATURES = 128
BODY_CONVS = 10
CONVS = BODY_CONVS + 2
# Each 3x3 conv widens the receptive field by one LR pixel on every side.
RECEPTIVE_RADIUS = CONVS
SCALES = (2, 3, 4)

# Official model names -> (scale, noise_free).
MODELS: dict[str, tuple[int, bool]] = {
    f"{prefix}_x{scale}": (scale, prefix == "srmdnf")
    for prefix in ("srmd", "srmdnf") for scale in SCALES
}


def input_channels(*, noise_free: bool) -> int:
    """RGB + 15 PCA components (+ 1 noise level unless ``noise_free``): 19 or 18."""
    return 3 + PCA_COMPONENTS + (0 if noise_free else 1)


class SRMD(nn.Module):
    """SRMD on a pre-assembled input.

    ``forward(x)``: x (N, in_nc, h, w) float, channels [R, G, B, pca_1..pca_15(, sigma/255)], RGB in
    [0, 1] -> (N, 3, h s, w s), not clamped (``srmd.inference`` clamps to [0, 1]).
    """

    def __init__(self, *, scale: int, noise_free: bool = False) -> None:
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"SRMD scale must be one of {SCALES}, got {scale}")
        self.scale = scale
        self.noise_free = noise_free
        self.in_channels = input_channels(noise_free=noise_free)
        layers: list[nn.Module] = [nn.Conv2d(self.in_channels, FEATURES, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(BODY_CONVS):
            layers += [nn.Conv2d(FEATURES, FEATURES, 3, padding=1), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(FEATURES, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (N, {self.in_channels}, h, w), got {tuple(x.shape)}")
        return self.model(x)


def state_dict_shapes(*, scale: int, noise_free: bool) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the official state dict, in layer order, without building the network."""
    channels = [input_channels(noise_free=noise_free)] + [FEATURES] * (CONVS - 1) + [3 * scale * scale]
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(CONVS):
        shapes[f"model.{2 * i}.weight"] = (channels[i + 1], channels[i], 3, 3)
        shapes[f"model.{2 * i}.bias"] = (channels[i + 1],)
    return shapes


def build_srmd(*, scale: int, noise_free: bool = False,
               state_dict: Mapping[str, torch.Tensor] | None = None) -> SRMD:
    """An ``SRMD`` in eval mode; ``state_dict`` (when given) is loaded with ``strict=True``."""
    net = SRMD(scale=scale, noise_free=noise_free)
    if state_dict is not None:
        net.load_state_dict(dict(state_dict), strict=True)
    return net.eval()


def load_state_dict(file: str | Path | BinaryIO, *,
                    map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a ``.pth`` state dict (a path or a binary file object) with ``weights_only=True``:
    tensors only, never pickled code. Raises ``ValueError`` if it is not a dict of tensors."""
    state = torch.load(file, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("not a state dict of tensors")
    return state
