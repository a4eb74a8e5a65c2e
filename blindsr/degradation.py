"""The degradation model LR = (HR (x) k)|s in the handoff convention, DIV2KRK-protocol random kernels,
and MATLAB-compatible bicubic ``imresize`` for numpy arrays and (differentiably) torch tensors.

The convention itself is defined in ``blindsr.kernel``; ``degrade`` is its reference
implementation and reproduces the DIV2KRK-style benchmark sets from their ground truth.
"""
from __future__ import annotations

import math
from typing import Sequence, TypeVar

import numpy as np
from scipy import ndimage

from blindsr.kernel import SRKernel, recentre

try:  # torch is a hard dependency of the package, but the numpy paths must not need it loaded
    import torch
except ImportError:  # pragma: no cover
    torch = None

Array = TypeVar("Array")
RESIZE_BLOCK_ELEMENTS = 1 << 21  # taps x outputs gathered at once by imresize (float64: 16 MB) ...
RESIZE_WHOLE_TORCH = 1 << 25  # ... but torch tensors up to this many in one go (see _resize_axis)
UPSCALE_BAND_ELEMENTS = 1 << 22  # output values per band of ``bicubic_upscale`` (float64: 32 MB)

# DIV2KRK protocol (KernelGAN paper, Sec. 5; measured on DIV2KRK itself, see data/README.md).
DIV2KRK_EIGEN_RANGE = (0.6, 5.0)
DIV2KRK_NOISE = 0.25
DIV2KRK_SIZES = {2: 11, 4: 31}


def sampling_kernel(kernel: SRKernel | np.ndarray, scale: int) -> np.ndarray:
    """The centred kernel shifted by (s-1)/2 px down and right (cubic spline), zero-padded first.
    Correlating with it and keeping [0::s, 0::s] samples on block centres. A shift keeps the taps'
    sum, but the spline's ringing tail is cut at the padded canvas (a visible loss for the
    smallest kernels: tests/test_fuzz.py), so the sum is restored."""
    k = np.asarray(kernel.array if isinstance(kernel, SRKernel) else kernel, dtype=np.float64)
    shift = (scale - 1) / 2
    if shift == 0:
        return k.copy()
    pad = int(math.ceil(shift)) + 1
    shifted = ndimage.shift(np.pad(k, pad), (shift, shift), order=3, mode="constant")
    return shifted * (k.sum() / shifted.sum())


def degrade(hr: np.ndarray, kernel: SRKernel | np.ndarray, scale: int) -> np.ndarray:
    """Reference degradation: correlate ``hr`` (H, W[, C], float) with the sampling kernel using
    half-sample symmetric borders and keep pixels [0::s, 0::s]. Output ceil(H/s) x ceil(W/s).

    Only the kept pixels are computed (one strided multiply-add per kernel tap), which equals
    ``scipy.ndimage.correlate(..., mode='reflect')[::s, ::s]`` at 1/s^2 of its cost.
    """
    if hr.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {hr.shape}")
    k = sampling_kernel(kernel, scale)
    r = k.shape[0] // 2
    h, w = hr.shape[:2]
    pad = ((r, r), (r, r)) + ((0, 0),) * (hr.ndim - 2)
    padded = np.pad(np.asarray(hr, dtype=np.float64), pad, mode="symmetric")
    out_h, out_w = -(-h // scale), -(-w // scale)
    out = np.zeros((out_h, out_w) + hr.shape[2:])
    for a, b in zip(*np.nonzero(k)):
        out += k[a, b] * padded[a:a + scale * out_h:scale, b:b + scale * out_w:scale]
    return out


def quantize(image: np.ndarray, levels: int = 255) -> np.ndarray:
    """Round a [0, 1] float image to ``levels`` grey levels (still float in [0, 1])."""
    return np.clip(np.round(image * levels), 0, levels) / levels


def gaussian_kernel(size: int, covariance: np.ndarray) -> np.ndarray:
    """Anisotropic Gaussian exp(-x^T C^-1 x / 2) on a centred odd grid, normalised to sum 1."""
    c = size // 2
    rows, cols = np.mgrid[-c:c + 1, -c:c + 1].astype(np.float64)
    inv = np.linalg.inv(covariance)
    q = inv[0, 0] * rows**2 + 2 * inv[0, 1] * rows * cols + inv[1, 1] * cols**2
    k = np.exp(-0.5 * q)
    return k / k.sum()


def random_kernels(rng: np.random.Generator,
                   eigen_range: tuple[float, float] = DIV2KRK_EIGEN_RANGE) -> dict[int, SRKernel]:
    """One DIV2KRK-protocol draw: x2 and x4 kernels of the same anisotropic Gaussian.

    Covariance eigenvalues ~ U(``eigen_range``), by default the protocol's (0.6, 5); rotation ~
    U(-pi, pi); the x4 covariance is 5x the x2 one (what two x2 steps compose to); each tap of each
    kernel is multiplied by 1 + U(-0.25, 0.25) and the kernel renormalised. Sizes 11x11 (x2) and
    31x31 (x4).
    """
    lam = rng.uniform(*eigen_range, size=2)
    theta = rng.uniform(-np.pi, np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cov = rot @ np.diag(lam) @ rot.T
    out = {}
    for scale, factor in ((2, 1.0), (4, 5.0)):
        k = gaussian_kernel(DIV2KRK_SIZES[scale], cov * factor)
        k = k * (1 + rng.uniform(-DIV2KRK_NOISE, DIV2KRK_NOISE, size=k.shape))
        out[scale] = SRKernel(k / k.sum(), scale, provenance={
            "estimator": "div2krk-protocol", "eigenvalues": lam.tolist(), "theta": float(theta)})
    return out


def bicubic_taps(scale: int) -> np.ndarray:
    """MATLAB's antialiased bicubic 1-D downscaling filter for factor 1/s, centred on the block
    centre: cubic(d/s)/s at offsets d = +-0.5, +-1.5, ... for even s (4s taps; x2:
    [-3, -9, 29, 111, 111, 29, -9, -3]/256) and d = 0, +-1, ... for odd s (4s - 1 taps), normalised.
    """
    offsets = np.arange(4 * scale) - (4 * scale - 1) / 2 if scale % 2 == 0 else np.arange(1 - 2 * scale, 2 * scale)
    taps = cubic(offsets / scale) / scale
    taps = taps[taps != 0]  # odd s: the cubic's zeros at d = +-s
    return taps / taps.sum()


def bicubic_kernel(scale: int) -> SRKernel:
    """The kernel a non-blind SR method assumes: MATLAB's bicubic x1/s filter (outer product),
    re-centred onto an odd canvas by linear interpolation. Has small negative lobes."""
    taps = bicubic_taps(scale)
    k = recentre(np.outer(taps, taps), order=1)
    return SRKernel(k / k.sum(), scale, allow_negative=True,
                    provenance={"estimator": "bicubic", "taps": taps.tolist()})


# ---------------------------------------------------------------------------------------------
# MATLAB-compatible imresize (bicubic, antialiased when shrinking)
# ---------------------------------------------------------------------------------------------

def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic'), support [-2, 2]."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights (out_len, P) and 0-based source indices (out_len, P) of one resize axis.

    MATLAB's ``contributions``: output pixel j (1-based) reads source coordinate
    u = j/s + (1 - 1/s)/2; when shrinking, the kernel is stretched by 1/s (antialiasing); weights
    are normalised to sum 1; indices beyond the border mirror half-sample symmetrically.
    """
    width = 4.0
    if scale < 1:
        def kernel(x): return scale * cubic(scale * x)
        width /= scale
    else:
        kernel = cubic
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    weights = kernel(u[:, None] - idx)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    idx = mirror[np.mod(idx - 1, 2 * in_len).astype(np.int64)]
    used = np.any(weights != 0, axis=0)
    return weights[:, used], idx[:, used]


def imresize(image: Array, scale: float | Sequence[float] | None = None,
             output_shape: Sequence[int] | None = None) -> Array:
    """MATLAB ``imresize(image, scale, 'bicubic')`` for numpy (H, W[, C]) arrays or torch
    (..., H, W) tensors (differentiable; weights built in float64, applied in the tensor's dtype).

    Give ``scale`` (one factor or one per axis; output size ceil(in * s)) or ``output_shape``
    (then s = out / in per axis). Axes are resized one at a time, the most-shrunk first, as MATLAB
    does. Works for sizes not divisible by the scale.
    """
    is_torch = torch is not None and isinstance(image, torch.Tensor)
    axes = (-2, -1) if is_torch else (0, 1)
    in_shape = [image.shape[a] for a in axes]
    if output_shape is not None:
        out_shape = [int(v) for v in output_shape]
        scales = [o / i for o, i in zip(out_shape, in_shape)]
    elif scale is not None:
        scales = list(scale) if isinstance(scale, (list, tuple)) else [float(scale)] * 2
        out_shape = [int(math.ceil(i * s - 1e-9)) for i, s in zip(in_shape, scales)]
    else:
        raise ValueError("imresize needs a scale or an output_shape")
    if min(out_shape) < 1 or min(in_shape) < 1:
        raise ValueError(f"cannot resize {in_shape} to {out_shape}")
    out = image
    for dim in sorted(range(2), key=lambda d: scales[d]):
        if in_shape[dim] == out_shape[dim] and scales[dim] == 1:
            continue
        weights, idx = contributions(in_shape[dim], out_shape[dim], scales[dim])
        out = _resize_axis(out, axes[dim], weights, idx, is_torch)
    return out


def bicubic_upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic interpolation by ``scale`` (``imresize``), clipped to [0, 1]; numpy (H, W[, C]).

    Computed in bands of about ``UPSCALE_BAND_ELEMENTS`` output values: a band's row pass reads
    only the rows it needs, then its column pass and clip, the same numbers ``imresize`` of the
    whole image gives (rows first, as there: both axes have the same scale). A photo of many
    megapixels needs neither the row pass's half-size array nor a second output-sized one."""
    image = np.asarray(image)
    rows, cols = image.shape[:2]
    factor = float(scale)
    out_rows, out_cols = (int(math.ceil(n * factor - 1e-9)) for n in (rows, cols))
    row_weights, row_index = contributions(rows, out_rows, factor)
    col_weights, col_index = contributions(cols, out_cols, factor)
    out = np.empty((out_rows, out_cols) + image.shape[2:], dtype=np.result_type(image, row_weights))
    band = max(1, UPSCALE_BAND_ELEMENTS // (out_cols * math.prod(image.shape[2:])))
    for top in range(0, out_rows, band):
        part = _resize_axis(image, 0, row_weights[top:top + band], row_index[top:top + band], False)
        part = _resize_axis(part, 1, col_weights, col_index, False)
        out[top:top + band] = np.clip(part, 0.0, 1.0, out=part)
    return out


def _resize_axis(x, axis: int, weights: np.ndarray, idx: np.ndarray, is_torch: bool):
    # Gathering every tap at once makes an array taps times the output's (a 24 MP photo: several
    # GB); block by block along the other image axis the numbers are the same, and stay in cache.
    if is_torch:
        w = torch.as_tensor(weights, dtype=x.dtype, device=x.device)
        i = torch.as_tensor(idx, device=x.device)
        moved = torch.movedim(x, axis, -1)
        gathered = math.prod(moved.shape[:-1]) * idx.size
        # torch's sum over the taps rounds differently for other block shapes: images up to
        # RESIZE_WHOLE_TORCH (every benchmark's) and training crops (differentiable) in one go.
        if gathered <= RESIZE_WHOLE_TORCH or (x.requires_grad and torch.is_grad_enabled()):
            return torch.movedim((moved[..., i] * w).sum(-1), -1, axis)
        out = moved.new_empty((*moved.shape[:-1], idx.shape[0]))
        along = moved.ndim - 2  # (..., H, W): the other image axis is second to last
    else:
        w, i = weights, idx
        moved = np.moveaxis(np.asarray(x), axis, -1)
        out = np.empty(moved.shape[:-1] + idx.shape[:1], dtype=np.result_type(moved, weights))
        along = 0  # (H, W[, C]): the other image axis comes first
    per_index = math.prod(out.shape) // max(1, out.shape[along]) * idx.shape[1]  # taps x outputs per index
    step = max(1, RESIZE_BLOCK_ELEMENTS // max(1, per_index))
    for start in range(0, out.shape[along], step):
        block = (slice(None),) * along + (slice(start, start + step),)
        out[block] = (moved[block][..., i] * w).sum(-1)
    return torch.movedim(out, -1, axis) if is_torch else np.moveaxis(out, -1, axis)
