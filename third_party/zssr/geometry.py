"""The eight rotations/mirrors of the square (dihedral group D4) for images and kernels, and which
of them a kernel allows.

Transform t in 0..7 rotates by 90 * (t % 4) degrees (from the row axis towards the column axis,
as ``numpy.rot90``) and then, for t >= 4, mirrors left-right. For an image whose sides are
divisible by s, degrading commutes with a transform when the kernel is transformed too:
T(degrade(x, k)) = degrade(T(x), T(k)) (block centres map to block centres). A network trained
on one kernel may therefore see transformed inputs (self-ensemble, dihedral fathers) only under
transforms that leave the kernel unchanged.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

TRANSFORMS = tuple(range(8))


def transform(x: torch.Tensor, t: int) -> torch.Tensor:
    """Apply transform ``t`` to the last two axes of ``x`` (..., H, W)."""
    y = torch.rot90(x, t % 4, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if t >= 4 else y


def inverse(x: torch.Tensor, t: int) -> torch.Tensor:
    """Undo ``transform(., t)``; the identity (t = 0) returns ``x`` itself, not a copy."""
    if t == 0:
        return x
    y = torch.flip(x, dims=(-1,)) if t >= 4 else x
    return torch.rot90(y, -(t % 4), dims=(-2, -1))


def transform_kernel(kernel: np.ndarray, t: int) -> np.ndarray:
    """Transform ``t`` of a (K, K) kernel, the same geometry as ``transform`` on images."""
    k = np.rot90(kernel, t % 4)
    return np.fliplr(k) if t >= 4 else k


def allowed_transforms(kernels: Sequence[np.ndarray | None], tolerance: float) -> tuple[int, ...]:
    """Transforms that leave every kernel unchanged within ``tolerance`` (sum of absolute
    differences; kernels sum to 1). None stands for MATLAB's bicubic kernel, which all allow."""
    return tuple(t for t in TRANSFORMS
                 if all(k is None or np.abs(transform_kernel(k, t) - k).sum() <= tolerance for k in kernels))
