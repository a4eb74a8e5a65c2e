"""MATLAB-compatible bicubic ``imresize`` for torch tensors (..., H, W).

Each axis is one dense linear operator (out, in), built once in float64 and cached:

* output pixel j (1-based) reads the source coordinate u = j / s + (1 - 1/s) / 2, so pixel
  centres of input and output coincide (no half-pixel shift);
* weights are Keys' cubic (a = -0.5) at distance u - i, support 4; when shrinking (s < 1) the
  cubic is stretched by 1/s (antialiasing); each row is normalised to sum 1;
* source indices outside the image mirror half-sample symmetrically (edge pixel repeated).

The scale used for the coordinates and the output length are separate arguments, as in the
authors' code: a 9-pixel father's 5-pixel son is upscaled with s = 2 to 9 pixels, not 10.

A dense operator costs in * out per row of pixels: nothing for training crops and benchmark
images, minutes for a photo of many megapixels. An axis whose operator would exceed
``DENSE_ELEMENTS`` (outside of autograd) is resized from each output pixel's few taps instead,
block by block: the same sums, equal to rounding (tests/zssr/test_resize.py).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, support [-2, 2]."""
    ax = np.abs(x)
    return ((1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1)
            + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def mirror_indices(index: np.ndarray, length: int) -> np.ndarray:
    """0-based indices folded into [0, length) by half-sample symmetric reflection (periodic 2L)."""
    folded = np.mod(index, 2 * length)
    return np.where(folded < length, folded, 2 * length - 1 - folded)


DENSE_ELEMENTS = 1 << 22  # out x in of the largest axis operator applied as a dense matrix
BLOCK_ELEMENTS = 1 << 21  # taps x outputs gathered at once by the banded resize


def taps(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Each output pixel's source indices (0-based, mirrored) and float64 weights, (out_len, T)."""
    stretch = min(scale, 1.0)
    width = 4.0 / stretch
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2)
    source = left[:, None] + np.arange(int(math.ceil(width)) + 2)[None, :]  # 1-based
    weights = stretch * cubic(stretch * (u[:, None] - source))
    weights /= weights.sum(axis=1, keepdims=True)
    return mirror_indices(source.astype(np.int64) - 1, in_len), weights


@lru_cache(maxsize=64)
def resize_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """The (out_len, in_len) float64 operator of one axis (see the module docstring)."""
    index, weights = taps(in_len, out_len, scale)
    matrix = np.zeros((out_len, in_len))
    rows = np.broadcast_to(np.arange(out_len)[:, None], index.shape)
    np.add.at(matrix, (rows, index), weights)
    return matrix


@lru_cache(maxsize=64)
def _operator(in_len: int, out_len: int, scale: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(resize_matrix(in_len, out_len, scale), dtype=dtype, device=device)


def imresize(x: torch.Tensor, scale: float | Sequence[float] | None = None,
             size: Sequence[int] | None = None, add_to: torch.Tensor | None = None) -> torch.Tensor:
    """Bicubic resize of the last two axes of ``x`` (..., H, W), MATLAB ``imresize`` semantics.

    Args:
        x: float tensor (..., H, W); the operators are applied in its dtype on its device.
        scale: factor for the coordinate mapping, one value or (rows, cols).
        size: output (H', W'). Default ceil(in * scale). Given alone, scale = out / in per axis.
        add_to: a tensor of the output's shape and dtype that receives the result: ``add_to``
            + the resize is written into it and returned (a banded resize then needs no
            output-sized buffer of its own).

    Returns:
        Tensor (..., H', W'), differentiable with respect to ``x`` (unless ``add_to`` is given).
    """
    in_size = x.shape[-2:]
    if scale is None and size is None:
        raise ValueError("imresize needs a scale or a size")
    if scale is None:
        scales = [o / i for o, i in zip(size, in_size)]
    else:
        scales = [float(v) for v in scale] if isinstance(scale, (list, tuple)) else [float(scale)] * 2
    out_size = list(size) if size is not None else [int(math.ceil(i * s - 1e-9)) for i, s in zip(in_size, scales)]
    if min(out_size) < 1 or min(in_size) < 1:
        raise ValueError(f"cannot resize {tuple(in_size)} to {tuple(out_size)}")
    banded = [o * i > DENSE_ELEMENTS and not (x.requires_grad and torch.is_grad_enabled())
              for o, i in zip(out_size, in_size)]
    if not any(banded):
        rows = _operator(in_size[0], out_size[0], scales[0], x.dtype, x.device)
        cols = _operator(in_size[1], out_size[1], scales[1], x.dtype, x.device)
        x = rows @ x @ cols.T
        return x if add_to is None else add_to.add_(x)
    for axis in (-2, -1):
        i, o, s = in_size[axis], out_size[axis], scales[axis]
        into = add_to if axis == -1 else None
        if banded[axis]:
            x = _banded(x, axis, *taps(i, o, s), into)
            continue
        x = torch.movedim(_operator(i, o, s, x.dtype, x.device) @ torch.movedim(x, axis, -2), -2, axis)
        if into is not None:
            x = into.add_(x)
    return x


def _banded(x: torch.Tensor, axis: int, index: np.ndarray, weights: np.ndarray,
            add_to: torch.Tensor | None = None) -> torch.Tensor:
    """Resize axis ``axis`` of x (..., H, W): output pixel j is sum_t weights[j, t] x[index[j, t]],
    a block of the other axis at a time (bounded memory); added into ``add_to`` when given."""
    moved = torch.movedim(x, axis, -1)
    i = torch.as_tensor(index, device=x.device)
    w = torch.as_tensor(weights, dtype=x.dtype, device=x.device)
    shape = (*moved.shape[:-1], index.shape[0])
    out = moved.new_empty(shape) if add_to is None else torch.movedim(add_to, axis, -1)
    if out.shape != shape:
        raise ValueError(f"add_to has shape {tuple(add_to.shape)}; the resize gives {shape} (axes moved)")
    step = max(1, BLOCK_ELEMENTS // max(1, math.prod(out.shape) // out.shape[-2] * index.shape[1]))
    for start in range(0, out.shape[-2], step):
        part = (moved[..., start:start + step, :][..., i] * w).sum(-1)
        if add_to is None:
            out[..., start:start + step, :] = part
        else:
            out[..., start:start + step, :] += part
    return torch.movedim(out, -1, axis)
