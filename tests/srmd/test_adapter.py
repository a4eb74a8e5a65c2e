"""The kernel adapter: handoff kernel (blur -> direct subsampling) -> SRMD's k_b (blur -> bicubic)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from blindsr.backends.srmd import (SRMD_SUPPORT, TRAINING_EIGENVALUES, bicubic_filter,
                                   downsampler_residual, fit_bicubic_equivalent, naive_srmd_kernel,
                                   srmd_kernel)
from blindsr.degradation import degrade, gaussian_kernel, imresize
from blindsr.errors import UsageError
from blindsr.kernel import SRKernel
from blindsr.metrics import psnr


def covariance(k: np.ndarray) -> np.ndarray:
    c = k.shape[0] // 2
    rows, cols = np.mgrid[-c:c + 1, -c:c + 1]
    return np.array([[np.sum(k * rows * rows), np.sum(k * rows * cols)],
                     [np.sum(k * rows * cols), np.sum(k * cols * cols)]])


def smooth_image(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    image = ndimage.gaussian_filter(rng.random((size, size, 3)), sigma=(1.5, 1.5, 0))
    return (image - image.min()) / np.ptp(image)


def bicubic_down(hr: np.ndarray, k_b: np.ndarray, scale: int) -> np.ndarray:
    """SRMD's training degradation: correlate with k_b, then MATLAB imresize by 1/s."""
    return imresize(ndimage.correlate(hr, k_b[:, :, None], mode="reflect"), 1.0 / scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_filter_is_imresize(scale):
    """Correlating with the outer-product filter at each block centre reproduces imresize inside."""
    rng = np.random.default_rng(scale)
    hr = rng.random((24 * scale, 24 * scale))
    first, taps = bicubic_filter(scale)
    assert taps.sum() == pytest.approx(1.0)
    lr = imresize(hr, 1.0 / scale)
    for i, j in [(8, 8), (10, 13), (15, 9)]:
        rows = scale * i + (scale - 1) / 2 + first + np.arange(len(taps))
        cols = scale * j + (scale - 1) / 2 + first + np.arange(len(taps))
        patch = hr[np.ix_(rows.astype(int), cols.astype(int))]
        assert np.all(rows == rows.astype(int))  # taps sit on HR pixels
        assert taps @ patch @ taps == pytest.approx(lr[i, j], abs=1e-12)


@pytest.mark.parametrize("scale,sigma,expected", [(2, 1.0, (0.72, 0.9)), (4, 2.0, (1.4, 1.8)),
                                                  (3, 1.5, (1.05, 1.35))])
def test_fitted_gaussian_is_narrower(scale, sigma, expected):
    k_d = SRKernel(gaussian_kernel(31, np.eye(2) * sigma**2), scale)
    fitted = fit_bicubic_equivalent(k_d)
    assert fitted.array.shape == (SRMD_SUPPORT, SRMD_SUPPORT)
    assert fitted.array.sum() == pytest.approx(1.0)
    sigmas = np.sqrt(fitted.diagnostics["eigenvalues_used"])
    assert np.allclose(sigmas, sigmas[0])  # isotropic in, isotropic out
    assert expected[0] < sigmas[0] < expected[1] < sigma
    assert fitted.diagnostics["residual"] < naive_srmd_kernel(k_d).diagnostics["residual"]


def test_fit_matches_the_direct_degradation_better_than_naive():
    """On a random smooth image, bicubic-down(HR (x) k_b) is closer to degrade(HR, k_d)."""
    rng = np.random.default_rng(7)
    hr = smooth_image(rng)
    theta = 0.6
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    for scale, eig in ((2, [0.8, 3.0]), (4, [2.5, 7.0])):  # inside SRMD's range once fitted
        k_d = SRKernel(gaussian_kernel(31, rot @ np.diag(eig) @ rot.T), scale)
        target = degrade(hr, k_d, scale)
        scores = {}
        for adapter in ("fit", "naive"):
            k_b = srmd_kernel(k_d, adapter).array
            scores[adapter] = psnr(bicubic_down(hr, k_b, scale)[8:-8, 8:-8], target[8:-8, 8:-8], peak=1.0)
        assert scores["fit"] > scores["naive"] + 1.0, scores


def test_orientation_is_kept():
    """An anisotropic k_d gives a k_b elongated the same way (no transposition on the way)."""
    cov = np.array([[3.0, 1.2], [1.2, 1.0]])
    k_b = fit_bicubic_equivalent(SRKernel(gaussian_kernel(21, cov), 2)).array
    fitted = covariance(k_b)
    assert np.sign(fitted[0, 1]) == np.sign(cov[0, 1])
    assert fitted[0, 0] > fitted[1, 1]
    major = lambda c: np.linalg.eigh(c)[1][:, 1]  # noqa: E731
    assert abs(major(fitted) @ major(cov)) > 0.99


def test_clamped_to_the_training_range():
    sharp = SRKernel(gaussian_kernel(15, np.eye(2) * 0.2), 2)  # sharper than the bicubic filter
    fitted = fit_bicubic_equivalent(sharp)
    assert fitted.diagnostics["clamped"]
    assert min(fitted.diagnostics["eigenvalues_fitted"]) < TRAINING_EIGENVALUES[0]
    assert np.allclose(fitted.diagnostics["eigenvalues_used"], TRAINING_EIGENVALUES[0])
    wide = SRKernel(gaussian_kernel(41, np.diag([60.0, 8.0])), 2)
    fitted = fit_bicubic_equivalent(wide)
    assert fitted.diagnostics["clamped"]
    assert max(fitted.diagnostics["eigenvalues_used"]) == pytest.approx(TRAINING_EIGENVALUES[1])
    # x4: no upper clamp (measured better on BSD100RK x4), so the fitted width is kept.
    wide4 = SRKernel(gaussian_kernel(41, np.diag([30.0, 2.0])), 4)
    fitted4 = fit_bicubic_equivalent(wide4)
    assert max(fitted4.diagnostics["eigenvalues_used"]) > TRAINING_EIGENVALUES[1]
    assert fitted4.diagnostics["lost_energy"] > 0.01  # a wide Gaussian spills out of 15x15


def test_naive_is_the_cropped_kernel():
    k_d = SRKernel(gaussian_kernel(31, np.diag([9.0, 4.0])), 4)
    naive = naive_srmd_kernel(k_d)
    window = k_d.array[8:23, 8:23]
    np.testing.assert_allclose(naive.array, window / window.sum())
    assert naive.diagnostics["lost_energy"] == pytest.approx(1 - window.sum())
    small = SRKernel(gaussian_kernel(11, np.eye(2)), 2)
    np.testing.assert_allclose(naive_srmd_kernel(small).array[2:13, 2:13], small.array)
    assert naive_srmd_kernel(small).diagnostics["residual"] == pytest.approx(
        downsampler_residual(naive_srmd_kernel(small).array, small))


def test_unknown_adapter():
    with pytest.raises(UsageError, match="fit, naive"):
        srmd_kernel(SRKernel(gaussian_kernel(11, np.eye(2)), 2), "exact")
