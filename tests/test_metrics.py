from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from blindsr.degradation import bicubic_kernel, degrade, gaussian_kernel, quantize
from blindsr.kernel import SRKernel
from blindsr.metrics import kernel_psnr, lr_psnr, psnr, rgb_to_y, shave, ssim, y_psnr_ssim


def test_rgb_to_y_matches_matlab_constants():
    assert rgb_to_y(np.array([0.0, 0.0, 0.0])) == pytest.approx(16.0)
    assert rgb_to_y(np.array([1.0, 1.0, 1.0])) == pytest.approx(235.0)
    assert rgb_to_y(np.array([1.0, 0.0, 0.0])) == pytest.approx(16 + 65.481)


def test_psnr_hand_values():
    a = np.zeros((4, 4))
    assert psnr(a, a + 1.0) == pytest.approx(10 * np.log10(255**2))
    assert psnr(a, a) == float("inf")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ssim_matches_scikit_image(rng, dtype):
    metrics = pytest.importorskip("skimage.metrics")
    a = ndimage.gaussian_filter(rng.random((64, 80)), 1.2) * 255
    b = np.clip(a + rng.normal(0, 8, a.shape), 0, 255)
    ref = metrics.structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False)
    # skimage averages over the full image after cropping (win_size - 1) / 2 = 5 px: the 'valid' area.
    assert ssim(a.astype(dtype), b.astype(dtype)) == pytest.approx(ref, abs=1e-6)
    assert ssim(a, a) == pytest.approx(1.0)


def test_y_psnr_ssim_shaves_border():
    hr = np.full((40, 40, 3), 0.5)
    sr = hr.copy()
    sr[:2] = 0.0  # damage only inside the shaved border
    p, s = y_psnr_ssim(sr, hr, 2)
    assert p == float("inf") and s == pytest.approx(1.0)
    assert shave(np.ones((10, 12)), 3).shape == (4, 6)


def test_kernel_psnr_properties():
    a = gaussian_kernel(11, np.array([[2.0, 0.3], [0.3, 1.0]]))
    assert kernel_psnr(a, a) == float("inf")
    # Invariant to where the kernel sits on its canvas and to the canvas size.
    shifted = np.zeros((15, 15))
    shifted[1:12, 3:14] = a
    assert kernel_psnr(shifted, a) > 60
    b = gaussian_kernel(11, np.array([[1.0, 0.0], [0.0, 1.0]]))
    d = kernel_psnr(a, b)
    expected = -10 * np.log10(np.mean((a / a.sum() - b / b.sum()) ** 2))
    assert d == pytest.approx(expected, abs=0.05)


def test_lr_psnr_is_infinite_for_the_true_kernel(rng):
    hr = ndimage.gaussian_filter(rng.random((64, 64, 3)), (1.5, 1.5, 0))
    k = SRKernel(gaussian_kernel(11, np.array([[1.7, 0.4], [0.4, 0.8]])), 2)
    lr = quantize(degrade(hr, k, 2))
    assert lr_psnr(hr, k, lr, 2) > 60
    assert lr_psnr(hr, bicubic_kernel(2), lr, 2) < lr_psnr(hr, k, lr, 2) - 5
