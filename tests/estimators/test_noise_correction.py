"""The refinement's noise correction (``kernelgan.noise_corrected``): hand-derived narrowing, the
gate, the one-way rule, and the estimator's path against the correction applied afterwards."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

import blindsr.estimators.kernelgan as kg
from blindsr.degradation import degrade, gaussian_kernel, quantize
from blindsr.estimators import get_estimator
from blindsr.estimators.kernelgan.settings import settings_for
from blindsr.kernel import SRKernel
from tests.conftest import textured_image
from tests.estimators.test_kernelgan_estimator import fake_train, native_kernel

SIZE = 25


def rotated(angle_deg: float, variances: tuple[float, float]) -> np.ndarray:
    """R diag(variances) R^T, R the rotation by ``angle_deg`` in (row, column) coordinates."""
    a = math.radians(angle_deg)
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return r @ np.diag(variances) @ r.T


def refined_kernel(covariance: np.ndarray) -> SRKernel:
    return SRKernel(gaussian_kernel(SIZE, covariance), 2, provenance={"refinement": {"applied": True}})


def fake_noise(sigma: float):
    def estimate(rgb, kernel, scale):
        return {"sigma": sigma, "per_channel": [sigma] * 3}
    return estimate


def fake_refit(covariance: np.ndarray, calls: list):
    """A stand-in for the refit on the noisier image: always the Gaussian of ``covariance``."""
    def refit(kernel, rgb, scale, fit_noise=True, shape="kernel"):
        calls.append(rgb.shape)
        return SRKernel(gaussian_kernel(SIZE, covariance), 2)
    return refit


def test_the_measured_widening_is_extrapolated_to_zero_noise(monkeypatch, rng):
    # The refined kernel: variances 4 and 1 along axes at 30 degrees. With the image's noise
    # doubled, the major axis widens by a log-scale of 0.05 and the minor not at all; the fit at
    # sigma 0 then lies 0.05 / (sqrt 2 - 1) = 0.1207 below along the major axis (by hand), so its
    # variance is 4 e^(-2 * 0.1207) = 3.143 and the minor stays 1.
    calls: list = []
    monkeypatch.setattr(kg, "estimate_noise", fake_noise(3.0))
    monkeypatch.setattr(kg, "refine_covariance", fake_refit(rotated(30, (4.0 * math.exp(0.1), 1.0)), calls))
    image = rng.random((64, 64, 3))
    out = kg.noise_corrected(refined_kernel(rotated(30, (4.0, 1.0))), image, settings_for("default"), seed=0)
    record = out.provenance["noise_correction"]
    assert record["applied"] and record["draws"] == kg.NOISE_CORRECTION_DRAWS == len(calls)
    assert sorted(record["log_scales"]) == pytest.approx([-0.05 / (math.sqrt(2) - 1), 0.0], abs=2e-3)
    assert np.allclose(out.covariance(), rotated(30, (4.0 * math.exp(-0.1 / (math.sqrt(2) - 1)), 1.0)), atol=0.02)
    assert out.array.sum() == pytest.approx(1.0) and out.provenance["refinement"] == {"applied": True}


def test_a_refit_that_narrows_changes_nothing(monkeypatch, rng):
    calls: list = []
    monkeypatch.setattr(kg, "estimate_noise", fake_noise(3.0))
    monkeypatch.setattr(kg, "refine_covariance", fake_refit(np.diag([3.5, 0.9]), calls))
    refined = refined_kernel(np.diag([4.0, 1.0]))
    out = kg.noise_corrected(refined, rng.random((64, 64, 3)), settings_for("default"))
    assert np.array_equal(out.array, refined.array) and not out.provenance["noise_correction"]["applied"]
    assert out.provenance["noise_correction"]["log_scales"] == [0.0, 0.0]


def test_the_correction_is_bounded(monkeypatch, rng):
    calls: list = []
    monkeypatch.setattr(kg, "estimate_noise", fake_noise(3.0))
    monkeypatch.setattr(kg, "refine_covariance", fake_refit(np.diag([4.0 * math.exp(1.0), 1.0]), calls))
    out = kg.noise_corrected(refined_kernel(np.diag([4.0, 1.0])), rng.random((64, 64, 3)), settings_for("default"))
    assert min(out.provenance["noise_correction"]["log_scales"]) == -kg.MAX_NOISE_CORRECTION
    assert out.covariance()[0, 0] == pytest.approx(4.0 * math.exp(-2 * kg.MAX_NOISE_CORRECTION), rel=0.02)


def test_below_the_gate_nothing_is_refitted(monkeypatch, rng):
    calls: list = []
    monkeypatch.setattr(kg, "estimate_noise", fake_noise(kg.NOISE_CORRECTION_SIGMA - 0.1))
    monkeypatch.setattr(kg, "refine_covariance", fake_refit(np.diag([8.0, 2.0]), calls))
    refined = refined_kernel(np.diag([4.0, 1.0]))
    out = kg.noise_corrected(refined, rng.random((64, 64, 3)), settings_for("default"))
    assert calls == [] and np.array_equal(out.array, refined.array)
    assert out.provenance["noise_correction"] == {"sigma": kg.NOISE_CORRECTION_SIGMA - 0.1,
                                                  "threshold": kg.NOISE_CORRECTION_SIGMA, "applied": False}


def test_the_added_noise_has_the_fitted_sigma_per_channel(monkeypatch):
    # The refit sees the image plus white noise of each channel's own fitted sigma (8-bit units).
    seen: list = []

    def refit(kernel, rgb, scale, fit_noise=True, shape="kernel"):
        seen.append(rgb.copy())
        return kernel
    monkeypatch.setattr(kg, "estimate_noise", lambda rgb, k, s: {"sigma": 3.0, "per_channel": [2.0, 3.0, 4.0]})
    monkeypatch.setattr(kg, "refine_covariance", refit)
    image = np.random.default_rng(3).uniform(0.3, 0.7, (400, 400, 3))
    kg.noise_corrected(refined_kernel(np.diag([2.0, 2.0])), image, settings_for("default"))
    added = (seen[0] - kg.prepare_image(image, settings_for("default"))).reshape(-1, 3).std(axis=0) * 255.0
    assert added == pytest.approx([2.0, 3.0, 4.0], rel=0.01)
    assert not np.array_equal(seen[0], seen[1])  # two draws


@pytest.mark.slow
def test_the_estimator_corrects_as_the_function_does(monkeypatch, rng):
    # A noisy photo-like image; the estimator with the correction hands over exactly what the
    # estimator without it, corrected afterwards, does (how the benchmarks score both).
    hr = textured_image(rng, 256, 256)
    lr = degrade(hr, gaussian_kernel(13, np.diag([2.5, 1.0])), 2)
    noisy = quantize(np.clip(lr + rng.normal(size=lr.shape) * 4.0 / 255.0, 0, 1))
    monkeypatch.setattr(kg, "train", fake_train([native_kernel(1.2), native_kernel(1.4)] * 2))
    on = get_estimator("kernelgan", device="cpu", restarts=2, noise_correction=True)
    off = get_estimator("kernelgan", device="cpu", restarts=2, noise_correction=False)
    with_correction = on.estimate(noisy, 2, seed=4).kernels[2]
    plain = off.estimate(noisy, 2, seed=4).kernels[2]
    afterwards = kg.noise_corrected(plain, noisy, off.settings, seed=4)
    record, again = (dict(k.provenance["noise_correction"]) for k in (with_correction, afterwards))
    assert record.pop("seconds") > 0 and again.pop("seconds") > 0
    assert record["sigma"] > kg.NOISE_CORRECTION_SIGMA and record == again
    assert record["applied"] and np.array_equal(with_correction.array, afterwards.array)
    assert "noise_correction" not in plain.provenance


def test_a_jpeg_is_not_corrected(monkeypatch, rng):
    # Noise, then JPEG (a phone's photo): the pixels show the quantisation, and nothing is refitted.
    calls: list = []
    monkeypatch.setattr(kg, "refine_covariance", fake_refit(np.diag([8.0, 2.0]), calls))
    noisy = quantize(np.clip(textured_image(rng, 128, 128) + rng.normal(size=(128, 128, 3)) * 4 / 255, 0, 1))
    buffer = io.BytesIO()
    Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=70)
    decoded = np.asarray(Image.open(buffer), dtype=np.float64) / 255.0
    refined = refined_kernel(np.diag([4.0, 1.0]))
    out = kg.noise_corrected(refined, decoded, settings_for("default"))
    assert calls == [] and np.array_equal(out.array, refined.array)
    assert out.provenance["noise_correction"] == {"applied": False,
                                                  "skipped": "JPEG-compressed (quality 70, read from the pixels)"}
