"""Running SRMD on whole images: tiles with a halo, so memory stays bounded and there are no seams.

Every output pixel of SRMD depends on LR pixels at most ``RECEPTIVE_RADIUS`` (12, one per 3x3
conv) away. A tile is therefore run with a halo of 12 real LR pixels on each side where the image
has them (zero padding only at the image's own border, as in one whole-image pass) and the halo's
outputs are dropped: tiled and untiled results agree up to float rounding.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from srmd.encoding import network_input
from srmd.network import RECEPTIVE_RADIUS, SRMD


def tile_grid(height: int, width: int, tile: int | None) -> list[tuple[int, int, int, int]]:
    """Tiles (top, left, bottom, right) covering an h x w LR image; one tile when ``tile`` is None
    or at least the image size."""
    if tile is not None and tile < 1:
        raise ValueError(f"tile size must be positive, got {tile}")
    step_h = height if tile is None else min(tile, height)
    step_w = width if tile is None else min(tile, width)
    return [(top, left, min(top + step_h, height), min(left + step_w, width))
            for top in range(0, height, step_h) for left in range(0, width, step_w)]


def tile_count(height: int, width: int, tile: int | None) -> int:
    """Number of tiles ``upscale`` runs (its progress units)."""
    return len(tile_grid(height, width, tile))


@torch.no_grad()
def upscale(model: SRMD, rgb: np.ndarray, vector: np.ndarray, *, tile: int | None = 256,
            device: str | torch.device = "cpu",
            progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Super-resolve one image.

    Args:
        model: an ``SRMD`` (moved to ``device`` here).
        rgb: (h, w, 3) float RGB in [0, 1].
        vector: (15,) or (16,) degradation vector (``srmd.encoding.degradation_vector``), matching
            the model's input channels.
        tile: LR tile side in pixels (a 12-pixel halo is added around each); None = one pass.
        device: where the network runs.
        progress: called with 1 after each tile.

    Returns:
        (h s, w s, 3) float32 in [0, 1].
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (h, w, 3) RGB image, got shape {rgb.shape}")
    if 3 + len(vector) != model.in_channels:
        raise ValueError(f"model takes {model.in_channels} channels; image + vector give {3 + len(vector)}")
    device = torch.device(device)
    model = model.to(device).eval()
    s = model.scale
    h, w = rgb.shape[:2]
    image = torch.from_numpy(np.ascontiguousarray(np.moveaxis(rgb, 2, 0), dtype=np.float32))[None]
    planes = torch.as_tensor(np.asarray(vector), dtype=torch.float32, device=device)
    out = np.empty((h * s, w * s, 3), dtype=np.float32)
    for top, left, bottom, right in tile_grid(h, w, tile):
        (t0, l0, b0, r0), (dt, dl) = _with_halo(top, left, bottom, right, h, w)
        piece = image[:, :, t0:b0, l0:r0].to(device)
        sr = model(network_input(piece, planes)).clamp_(0, 1)
        sr = sr[0, :, dt * s:(dt + bottom - top) * s, dl * s:(dl + right - left) * s]
        out[top * s:bottom * s, left * s:right * s] = sr.permute(1, 2, 0).cpu().numpy()
        if progress is not None:
            progress(1)
    return out


def _with_halo(top: int, left: int, bottom: int, right: int, h: int, w: int
               ) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """The tile grown by the receptive radius (clipped to the image), and where the tile starts
    inside it."""
    r = RECEPTIVE_RADIUS
    t0, l0 = max(top - r, 0), max(left - r, 0)
    return (t0, l0, min(bottom + r, h), min(right + r, w)), (top - t0, left - l0)
