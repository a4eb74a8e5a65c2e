"""The marginal-likelihood kernel score and the covariance refinement built on it."""
from __future__ import annotations

import math

import numpy as np
import pytest

from blindsr.degradation import degrade, gaussian_kernel, quantize
from blindsr.estimators.likelihood import (LRLikelihood, affine_warp, periodic_component,
                                           refine_covariance)
from blindsr.kernel import SRKernel


def second_moments(k: np.ndarray) -> np.ndarray:
    c = (k.shape[0] - 1) / 2
    rows, cols = np.mgrid[0:k.shape[0], 0:k.shape[1]] - c
    mr, mc = np.sum(k * rows), np.sum(k * cols)
    rows, cols = rows - mr, cols - mc
    return np.array([[np.sum(k * rows * rows), np.sum(k * rows * cols)],
                     [np.sum(k * rows * cols), np.sum(k * cols * cols)]])


def rotation(theta: float) -> np.ndarray:
    return np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])


def test_model_spectrum_equals_the_explicit_lr_covariance(rng):
    """For a circular Gaussian field with spectrum P, y = (x circularly convolved with k)[::2, ::2]
    has covariance D C D^T; its DFT must be diagonal with entries (per pixel) equal to the
    alias-summed model. Built here from explicit 64x64 and 16x16 matrices in float64."""
    hr, s = 8, 2
    lr = hr // s
    score = LRLikelihood.from_image(rng.random((lr, lr)), s)
    prior = score.prior.copy()
    prior[0, 0] = 0.0  # the DC term has infinite prior variance; the model masks it
    assert prior[0, 1] == pytest.approx((2 * math.pi / hr) ** -2)  # |w|^-2, w in rad/px
    # HR covariance: C = F^-1 diag(P) F  (circulant), as a dense matrix on flattened images.
    eye = np.eye(hr * hr).reshape(hr * hr, hr, hr)
    cov = np.real(np.fft.ifft2(np.fft.fft2(eye) * prior)).reshape(hr * hr, hr * hr)
    # Circular convolution with k, then keep [::2, ::2]: one dense matrix.
    k = rng.random((3, 3))
    k /= k.sum()
    kpad = np.zeros((hr, hr))
    kpad[:3, :3] = k
    conv = np.real(np.fft.ifft2(np.fft.fft2(eye) * np.fft.fft2(kpad))).reshape(hr * hr, hr, hr)
    down = conv[:, ::s, ::s].reshape(hr * hr, lr * lr).T
    cov_lr = down @ cov @ down.T
    f = np.fft.fft2(np.eye(lr * lr).reshape(lr * lr, lr, lr)).reshape(lr * lr, lr * lr)  # y -> DFT(y)
    spectral = f @ cov_lr @ f.conj().T / (lr * lr)
    assert np.allclose(spectral - np.diag(np.diag(spectral)), 0, atol=1e-12)
    explicit = np.real(np.diag(spectral)).reshape(lr, lr)
    assert np.allclose(explicit[score.mask], score.model(k)[score.mask], rtol=1e-10, atol=1e-14)


def test_periodic_component_is_the_image_minus_a_harmonic_field(rng):
    u = rng.random((24, 30)) + np.linspace(0, 3, 30)[None, :]
    smooth = u - periodic_component(u)
    laplacian = (np.roll(smooth, 1, 0) + np.roll(smooth, -1, 0) + np.roll(smooth, 1, 1)
                 + np.roll(smooth, -1, 1) - 4 * smooth)
    assert np.abs(laplacian[1:-1, 1:-1]).max() < 1e-10  # harmonic away from the border
    # The wrap-around jump of a ramp puts a cross of power on the DFT axes; the periodic part has
    # almost none of it.
    ramp = np.add.outer(np.linspace(0, 1, 24), np.linspace(0, 2, 30))

    def axis_power(a: np.ndarray) -> float:
        spectrum = np.abs(np.fft.fft2(a - a.mean())) ** 2
        return float(spectrum[0, 1:].sum() + spectrum[1:, 0].sum())
    assert axis_power(periodic_component(ramp)) < 1e-2 * axis_power(ramp)


def test_affine_warp_maps_the_covariance():
    """k'(x) = k(A^-1 x) has covariance A Sigma A (A symmetric)."""
    sigma = np.array([[1.1, 0.3], [0.3, 0.7]])
    params = (0.25, -0.2, 0.6)
    a = rotation(params[2]) @ np.diag(np.exp(params[:2])) @ rotation(params[2]).T
    warped = affine_warp(gaussian_kernel(21, sigma), np.array(params), 31)
    assert warped.sum() == pytest.approx(1.0)
    assert np.allclose(second_moments(warped), a @ sigma @ a, rtol=0.02, atol=0.01)
    assert np.allclose(affine_warp(gaussian_kernel(11, sigma), np.zeros(3), 11),
                       gaussian_kernel(11, sigma), atol=1e-7)


def power_law_field(rng: np.random.Generator, size: int) -> np.ndarray:
    """An RGB image whose luminance is a Gaussian field with a 1/|w|^2 spectrum (the model's
    prior), in [0, 1]."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / size)
    field = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((size, size))) * amplitude))
    field = (field - field.min()) / np.ptp(field)
    return np.clip(field[..., None] * np.array([0.9, 1.0, 0.8]) + 0.05, 0, 1)


@pytest.mark.parametrize("sigma, theta", [((2.4, 0.8), 0.5), ((0.7, 0.6), 0.0)])
def test_refinement_recovers_a_known_covariance(rng, sigma, theta):
    """LR made by the reference degradation from a field that fits the model, with a wide
    anisotropic kernel or a narrow one near the bicubic kernel; refinement starts from the
    isotropic middle width KernelGAN tends to return (sigma 1.5) and finds the true covariance."""
    hr = power_law_field(rng, 384)
    truth_cov = rotation(theta) @ np.diag(np.square(sigma)) @ rotation(theta).T
    truth = SRKernel(gaussian_kernel(15, truth_cov), 2)
    lr = quantize(degrade(hr, truth, 2))
    start = SRKernel(gaussian_kernel(13, np.eye(2) * 1.5 ** 2), 2)
    score = LRLikelihood.from_image(lr, 2)
    assert score(truth.array) < score(start.array)
    refined = refine_covariance(start, lr, 2)
    info = refined.provenance["refinement"]
    assert info["applied"] and info["nll_after"] < info["nll_before"]
    assert np.allclose(second_moments(refined.array), truth_cov, rtol=0.1, atol=0.06)
    assert refined.size <= 25 and info["lost_energy"] < 1e-5  # support cut to the kernel, not the canvas


def test_refinement_on_a_photo_beats_the_start(chelsea_hr):
    """Beyond the model: a photo, an anisotropic kernel, the same middle-width start. The photo's
    own softness (fur, an out-of-focus background) biases the fit wider, as it would any blind
    estimate; the error still halves and the orientation is found."""
    truth_cov = np.array([[2.6, 0.9], [0.9, 1.2]])
    truth = SRKernel(gaussian_kernel(15, truth_cov), 2)
    lr = quantize(degrade(chelsea_hr, truth, 2))
    start = SRKernel(gaussian_kernel(13, np.eye(2) * 1.5 ** 2), 2)
    refined = refine_covariance(start, lr, 2)
    found = second_moments(refined.array)
    error = np.linalg.norm(found - truth_cov)
    assert error < 0.5 * np.linalg.norm(second_moments(start.array) - truth_cov)
    major = np.linalg.eigh(found)[1][:, 1]
    true_major = np.linalg.eigh(truth_cov)[1][:, 1]
    assert abs(major @ true_major) > math.cos(math.radians(10))


def test_refinement_keeps_a_kernel_the_likelihood_cannot_improve(rng):
    """A constant image carries no information: nothing scores better than the identity map."""
    flat = np.full((64, 64, 3), 0.5)
    start = SRKernel(gaussian_kernel(13, np.eye(2) * 1.5 ** 2), 2)
    refined = refine_covariance(start, flat, 2)
    assert refined.provenance["refinement"]["applied"] is False
    assert np.array_equal(refined.array, start.array)
