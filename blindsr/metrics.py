"""Evaluation metrics, as the SR literature computes them.

* Y-channel PSNR/SSIM: MATLAB ``rgb2ycbcr`` luma Y = 16 + (65.481 R + 128.553 G + 24.966 B) for
  RGB in [0, 1], ``scale`` pixels shaved from every border, float64; SSIM as in Wang et al. 2004
  (11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering).
* Kernel PSNR: both kernels centred by centre of mass (linear interpolation) on a canvas larger
  than both, cropped to the central 11x11 and renormalised; -10 log10(mean squared difference).
* LR-reconstruction PSNR: the ground-truth HR re-degraded with the estimated kernel (reference
  degradation, 8-bit rounding) against the given LR over all channels, 8-px border excluded.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from blindsr.degradation import degrade, quantize
from blindsr.kernel import SRKernel, crop_or_pad, recentre
from blindsr.light import decode, encode

KERNEL_PSNR_CANVAS = 11
LR_PSNR_BORDER = 8
KERNEL_PSNR_FORMULA = ("-10*log10(mean((a-b)^2)), kernels centred by centre of mass (linear "
                       "interpolation), central 11x11, renormalised")
LR_PSNR_FORMULA = "PSNR(degrade(GT, k_est) rounded to 8 bits, LR), all channels, 8-px border"


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr luma for RGB in [0, 1]; Y in [16, 235]."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966])


def shave(image: np.ndarray, border: int) -> np.ndarray:
    return image[border:image.shape[0] - border, border:image.shape[1] - border] if border else image


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Mean SSIM of two single-channel images (Wang et al. 2004, Gaussian 11x11, sigma 1.5)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    taps = np.exp(-0.5 * (np.arange(11) - 5.0) ** 2 / 1.5**2)
    taps /= taps.sum()

    def filt(x: np.ndarray) -> np.ndarray:  # separable Gaussian, 'valid' region only
        y = ndimage.correlate1d(ndimage.correlate1d(x, taps, axis=0), taps, axis=1)
        return y[5:-5, 5:-5]

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def y_psnr_ssim(sr: np.ndarray, hr: np.ndarray, scale: int) -> tuple[float, float]:
    """Y-channel PSNR and SSIM of RGB images in [0, 1], ``scale`` px shaved from each border."""
    if sr.shape != hr.shape:
        raise ValueError(f"SR {sr.shape} and HR {hr.shape} differ in shape")
    y_sr, y_hr = shave(rgb_to_y(sr), scale), shave(rgb_to_y(hr), scale)
    return psnr(y_sr, y_hr), ssim(y_sr, y_hr)


def centred_for_comparison(kernel: np.ndarray, size: int = KERNEL_PSNR_CANVAS) -> np.ndarray:
    """A kernel centred by centre of mass (linear interpolation), cropped to ``size``, sum 1."""
    k = crop_or_pad(recentre(np.asarray(kernel, np.float64), order=1), size)
    return k / k.sum()


def kernel_psnr(estimate: SRKernel | np.ndarray, truth: SRKernel | np.ndarray,
                size: int = KERNEL_PSNR_CANVAS) -> float:
    a = centred_for_comparison(getattr(estimate, "array", estimate), size)
    b = centred_for_comparison(getattr(truth, "array", truth), size)
    return psnr(a, b, peak=1.0)


def lr_psnr(hr: np.ndarray, kernel: SRKernel | np.ndarray, lr: np.ndarray, scale: int,
            border: int = LR_PSNR_BORDER, light: str = "encoded") -> float:
    """PSNR (peak 255) of the LR image reproduced from ``hr`` with ``kernel`` against ``lr``;
    ``light="linear"`` blurs ``hr``'s linear light and encodes the result (``blindsr.light``).

    An ``SRKernel`` is used as handed off (it is centred by construction); a bare array, e.g. in
    another centring convention, is first centred by centre of mass (linear interpolation).
    """
    if isinstance(kernel, SRKernel):
        k = kernel.array
    else:
        k = centred_for_comparison(kernel, np.asarray(kernel).shape[0] + 4)
    reproduced = quantize(encode(degrade(decode(hr, light), k, scale), light))
    if reproduced.shape != lr.shape:
        raise ValueError(f"re-degraded {reproduced.shape} and LR {lr.shape} differ in shape")
    return psnr(shave(reproduced * 255, border), shave(np.asarray(lr) * 255, border))
