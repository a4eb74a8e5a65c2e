"""Downscaling with a kernel, in the handoff convention of the calling project.

A kernel arrives **centred**: odd square, sums to 1, centre of mass on the centre pixel. Downscaling
an image by s with it samples on block centres: LR pixel (i, j) is the kernel-weighted average
centred on the middle of HR block [s*i : s*i + s, s*j : s*j + s]. Done as in the reference
degradation: shift the kernel by (s - 1)/2 px down and right (cubic spline, after zero padding so
nothing falls off), correlate with half-sample symmetric borders, keep pixels [0::s, 0::s] - here
as one stride-s convolution, which computes only the kept pixels (s^2 less work than correlating
at full resolution and subsampling).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from zssr.resize import imresize, mirror_indices


def check_kernel(kernel: np.ndarray) -> np.ndarray:
    """The kernel as float64 after checking shape, finiteness and sum (raises ``ValueError``)."""
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
        raise ValueError(f"a kernel must be an odd square array, got shape {k.shape}")
    if not np.all(np.isfinite(k)) or abs(k.sum() - 1.0) > 1e-6:
        raise ValueError("a kernel must be finite and sum to 1")
    return k


def sampling_kernel(kernel: np.ndarray, scale: int) -> np.ndarray:
    """The centred kernel shifted by (s - 1)/2 px down and right (cubic spline, zero padded by
    ceil((s - 1)/2) + 1 first), its sum restored (the canvas cuts the spline's ringing tail).
    Correlating with it and keeping [0::s, 0::s] samples block centres."""
    k = check_kernel(kernel)
    shift = (scale - 1) / 2
    if shift == 0:
        return k.copy()
    pad = int(math.ceil(shift)) + 1
    shifted = ndimage.shift(np.pad(k, pad), (shift, shift), order=3, mode="constant")
    return shifted * (k.sum() / shifted.sum())


def symmetric_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad the last two axes of ``x`` by ``pad`` with half-sample symmetric reflection (numpy's
    'symmetric'; repeated reflection when ``pad`` exceeds the size)."""
    rows = torch.as_tensor(mirror_indices(np.arange(-pad, x.shape[-2] + pad), x.shape[-2]), device=x.device)
    cols = torch.as_tensor(mirror_indices(np.arange(-pad, x.shape[-1] + pad), x.shape[-1]), device=x.device)
    return x[..., rows, :][..., cols]


# Largest unfolded input one convolution call may build (elements): the CPU convolution of float64
# tensors unfolds its whole input (K*K values per output pixel), 31 GB for a 2000x1500 image with a
# 21x21 kernel, so large images are done in bands of output rows (same arithmetic per pixel).
BAND_ELEMENTS = 1 << 25
# Beyond this many unfolded elements (a photo of a few megapixels, where the unfolding's memory
# traffic made this correlation most of a pipeline's time: docs/BENCHMARKS.md, 'memory') the
# correlation is computed through the FFT instead: the same sums, equal to rounding
# (tests/zssr/test_downscale.py), at a fraction of the cost. Every benchmark image stays below it,
# so their results are bit for bit what the convolution gives.
FFT_ELEMENTS = 1 << 30


def correlate_fft(planes: torch.Tensor, kernel: torch.Tensor, scale: int) -> torch.Tensor:
    """``F.conv2d(symmetric_pad(planes, K // 2), kernel, stride=scale)`` for planes (B, 1, H, W) and
    kernel (K, K), by circular convolution with the flipped kernel at the padded size: outputs from
    index K - 1 on never wrap around, and they are exactly the valid correlation."""
    size = kernel.shape[-1]
    shape = (planes.shape[-2] + size // 2 * 2, planes.shape[-1] + size // 2 * 2)
    transfer = torch.fft.rfft2(kernel.flip((0, 1)), s=shape)
    # One plane at a time, padded on its own, keeping only the sampled outputs: a plane's spectra
    # and its full-size correlation are several times what is kept.
    out = [torch.fft.irfft2(torch.fft.rfft2(symmetric_pad(plane, size // 2), s=shape).mul_(transfer),
                            s=shape)[size - 1::scale, size - 1::scale].clone() for plane in planes[:, 0]]
    return torch.stack(out).unsqueeze(1)


def downscale(x: torch.Tensor, weight: torch.Tensor, scale: int) -> torch.Tensor:
    """Correlate every channel of ``x`` (N, C, H, W) with the sampling kernel ``weight`` (K, K)
    (see ``sampling_kernel``) on a symmetrically padded input, stride ``scale``, in bands of output
    rows bounded by ``BAND_ELEMENTS`` (through the FFT above ``FFT_ELEMENTS``).

    Returns (N, C, ceil(H / s), ceil(W / s)): output (i, j) is centred on input (s*i, s*j).
    """
    n, c, h, w = x.shape
    size = weight.shape[-1]
    planes = x.reshape(n * c, 1, h, w)
    kernel = weight.to(x.dtype)[None, None]
    out_h, out_w = -(-h // scale), -(-w // scale)
    if n * c * out_h * out_w * size * size > FFT_ELEMENTS:
        out = correlate_fft(planes, kernel[0, 0], scale)[..., :out_h, :out_w]
        return out.reshape(n, c, out_h, out_w)
    padded = symmetric_pad(planes, size // 2)
    band = max(1, BAND_ELEMENTS // (n * c * out_w * size * size))
    bands = [F.conv2d(padded[..., top * scale:(min(top + band, out_h) - 1) * scale + size, :], kernel, stride=scale)
             for top in range(0, out_h, band)]
    out = torch.cat(bands, dim=-2)
    return out.reshape(n, c, out.shape[-2], out.shape[-1])


class Downscaler:
    """The son of an image at 1/``scale``: with a centred kernel (strided correlation above) or,
    when the kernel is None, MATLAB's antialiased bicubic ``imresize`` (the ideal-case ZSSR).

    Attributes:
        kernel: the centred kernel (float64) or None.
        scale: integer factor.
    """

    def __init__(self, kernel: np.ndarray | None, scale: int, device: torch.device) -> None:
        self.kernel = None if kernel is None else check_kernel(kernel)
        self.scale = int(scale)
        self._weight = (None if self.kernel is None else
                        torch.as_tensor(sampling_kernel(self.kernel, self.scale), device=device))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, ceil(H / s), ceil(W / s))."""
        if self._weight is None:
            return imresize(x, 1.0 / self.scale)
        return downscale(x, self._weight, self.scale)
