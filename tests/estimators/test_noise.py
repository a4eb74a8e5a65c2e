"""The blind noise level: fitted per tile with the kernel, checked against the noise actually added."""
from __future__ import annotations

import numpy as np
import pytest

from blindsr.degradation import degrade, gaussian_kernel
from blindsr.estimators.noise import estimate_noise, tile_noise, weighted_quantile
from tests.estimators.test_likelihood import power_law_field

KERNEL = gaussian_kernel(13, np.array([[2.2, 0.6], [0.6, 1.4]]))


def noisy_lr(seed: int, sigma: float, flat_share: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A 1/f^2 scene (its left ``flat_share`` replaced by a smooth ramp, like a sky) degraded by
    ``KERNEL`` at x2, plus independent Gaussian noise of ``sigma`` (8-bit units) per channel;
    the LR image and the noise that was added."""
    rng = np.random.default_rng(seed)
    hr = power_law_field(rng, 320)
    cut = int(flat_share * hr.shape[1])
    if cut:
        hr[:, :cut] = np.linspace(0.3, 0.6, hr.shape[0])[:, None, None]
    lr = degrade(hr, KERNEL, 2)
    noise = rng.normal(0.0, sigma / 255.0, lr.shape)
    return lr + noise, noise


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
@pytest.mark.parametrize("flat_share", [0.0, 0.5])
def test_sigma_matches_the_noise_added(sigma, flat_share):
    lr, noise = noisy_lr(int(sigma) + int(10 * flat_share), sigma, flat_share)
    result = estimate_noise(lr, KERNEL, 2)
    realised = 255.0 * np.sqrt(np.mean(np.var(noise.astype(np.float64), axis=(0, 1))))  # float64 reference
    assert result["sigma"] == pytest.approx(realised, rel=0.08)
    assert len(result["per_channel"]) == 3 and min(result["tiles"]) > 0
    for channel, value in enumerate(result["per_channel"]):
        assert value == pytest.approx(255.0 * noise[..., channel].std(), rel=0.1)


def test_a_clean_image_has_next_to_no_noise():
    lr, _ = noisy_lr(3, 0.0)
    assert estimate_noise(lr, KERNEL, 2)["sigma"] < 0.5


def test_8bit_rounding_is_not_reported_as_noise():
    lr, noise = noisy_lr(4, 5.0)
    rounded = np.round(np.clip(lr, 0, 1) * 255.0) / 255.0
    realised = 255.0 * noise.std()
    assert estimate_noise(rounded, KERNEL, 2)["sigma"] == pytest.approx(realised, rel=0.08)


def test_the_estimate_follows_the_kernel_it_is_given():
    """What the kernel cannot pass is read as noise: a kernel too wide reads fine detail as
    noise (more sigma), one too narrow reads noise as detail (less), and with a kernel far too
    narrow no tile measures the noise any more, which the result says."""
    lr, noise = noisy_lr(5, 5.0)
    right = estimate_noise(lr, KERNEL, 2)
    wide = estimate_noise(lr, gaussian_kernel(21, np.eye(2) * 6.0), 2)
    narrow = estimate_noise(lr, gaussian_kernel(7, np.eye(2) * 0.3), 2)
    assert narrow["sigma"] < right["sigma"] < wide["sigma"]
    assert right["reliable"] and not narrow["reliable"] and narrow["tiles"] == [0, 0, 0]


def test_small_and_gray_images():
    assert tile_noise(np.zeros((40, 200)), KERNEL, 2) is None
    result = estimate_noise(np.full((40, 200), 0.5), KERNEL, 2)
    assert result["sigma"] == 0.0 and result["tiles"] == [0] and not result["reliable"]
    lr, noise = noisy_lr(6, 5.0)
    gray = estimate_noise(lr[..., 1], KERNEL, 2)
    assert gray["per_channel"] == [pytest.approx(255.0 * noise[..., 1].std(), rel=0.1)]


def test_weighted_quantile_by_hand():
    values, weights = np.array([3.0, 1.0, 2.0, 10.0]), np.array([1.0, 1.0, 1.0, 1.0])
    assert weighted_quantile(values, weights, 0.5) == 2.0  # cumulative 0.25, 0.5, ... reaches 0.5 at 2
    assert weighted_quantile(values, np.array([1.0, 1.0, 1.0, 7.0]), 0.5) == 10.0
