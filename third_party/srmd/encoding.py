"""SRMD's degradation map: the blur kernel's PCA code and the noise level, stretched to the LR size.

Code = P @ vec(k), P the official 15 x 225 PCA matrix (variable ``P`` of ``srmd_pca_matlab.mat``)
and vec the **column-major** (MATLAB ``k(:)``, numpy ``order="F"``) flattening of the 15 x 15
kernel. Row-major flattening would transpose the kernel: harmless for isotropic kernels, wrong for
anisotropic ones. P's basis is 180-degree symmetric, so convolution vs correlation (a kernel flip)
gives the same code; transposition does not.

The map has one constant plane per code component, then sigma / 255 (sigma in 0-255 units) unless
the model is noise-free; it is concatenated after the RGB channels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from srmd.network import PCA_COMPONENTS

KERNEL_SIZE = 15


def load_pca(path: str | Path) -> np.ndarray:
    """The PCA matrix ``P`` (15, 225) float64 from a MATLAB ``.mat`` file."""
    from scipy import io as sio

    data = sio.loadmat(str(path))
    if "P" not in data:
        raise ValueError(f"{path}: no variable 'P'")
    pca = np.asarray(data["P"], dtype=np.float64)
    if pca.shape != (PCA_COMPONENTS, KERNEL_SIZE * KERNEL_SIZE):
        raise ValueError(f"{path}: P has shape {pca.shape}, expected (15, 225)")
    return pca


def kernel_code(kernel: np.ndarray, pca: np.ndarray) -> np.ndarray:
    """PCA code (15,) float64 of a centred 15 x 15 kernel: P @ k(:), column-major."""
    k = np.asarray(kernel, dtype=np.float64)
    if k.shape != (KERNEL_SIZE, KERNEL_SIZE):
        raise ValueError(f"SRMD kernels are {KERNEL_SIZE}x{KERNEL_SIZE}, got {k.shape}")
    if pca.shape != (PCA_COMPONENTS, KERNEL_SIZE * KERNEL_SIZE):
        raise ValueError(f"PCA matrix must be (15, 225), got {pca.shape}")
    return pca @ k.reshape(-1, order="F")


def degradation_vector(code: np.ndarray, sigma: float, *, noise_free: bool) -> np.ndarray:
    """Per-pixel degradation channels (15 or 16,) float64: the code, then sigma / 255."""
    code = np.asarray(code, dtype=np.float64).reshape(-1)
    if code.shape != (PCA_COMPONENTS,):
        raise ValueError(f"expected a {PCA_COMPONENTS}-component code, got {code.shape}")
    return code if noise_free else np.append(code, sigma / 255.0)


def network_input(rgb: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """(N, 3, h, w) RGB + (C,) degradation vector -> (N, 3 + C, h, w), the vector stretched to h x w."""
    n, _, h, w = rgb.shape
    planes = vector.to(rgb.dtype).view(1, -1, 1, 1).expand(n, -1, h, w)
    return torch.cat([rgb, planes], dim=1)
