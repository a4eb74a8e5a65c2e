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


def refined_kernel(covariance: np.ndarray, scored: str = "whole image") -> SRKernel:
    return SRKernel(gaussian_kernel(SIZE, covariance), 2,
                    provenance={"refinement": {"applied": True, "scored": scored}})


def fake_noise(sigma: float):
    def estimate(rgb, kernel, scale):
        return {"sigma": sigma, "per_channel": [sigma] * 3}
    return estimate


def fake_refit(covariance: np.ndarray, calls: list, control: np.ndarray | None = None,
               scored: tuple[str, ...] = ("whole image",), second: np.ndarray | None = None):
    """A stand-in for the refits: the first call (the control, on the image as it is) gives the
    Gaussian of ``control`` (default: the start kernel unchanged), the first level's draws (noise
    sigma sqrt 2 times the image's) that of ``covariance``, the second level's (sqrt 3 times) that
    of ``second`` (default: the first level's widening, grown in proportion to sigma); each
    recorded as scoring ``scored[call]`` (the last repeats)."""
    def refit(kernel, rgb, scale, fit_noise=True, shape="kernel"):
        calls.append(rgb.shape)
        which = scored[min(len(calls) - 1, len(scored) - 1)]
        if len(calls) == 1:
            if control is None:
                return kernel.with_provenance(refinement={"scored": which})
            chosen = control
        elif len(calls) <= 1 + kg.NOISE_CORRECTION_DRAWS:
            chosen = covariance
        else:
            chosen = second if second is not None else proportional(kernel.covariance() if control is None
                                                                    else control, covariance)
        return SRKernel(gaussian_kernel(SIZE, chosen), 2, provenance={"refinement": {"scored": which}})
    return refit


def proportional(start: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The covariance at sqrt(3) sigma when ``start`` widened to ``first`` at sqrt(2) sigma in
    proportion to sigma (each log-scale grown by (sqrt 3 - 1) / (sqrt 2 - 1)), along ``start``'s axes."""
    variances, axes = np.linalg.eigh(start)
    along = np.einsum("ia,ij,ja->a", axes, first, axes)
    grown = variances * (along / variances) ** ((math.sqrt(3) - 1) / (math.sqrt(2) - 1))
    return axes @ np.diag(grown) @ axes.T


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
    assert record["applied"] and len(calls) == 1 + len(kg.NOISE_CORRECTION_LEVELS) * kg.NOISE_CORRECTION_DRAWS
    assert sorted(record["log_scales"]) == pytest.approx([-0.05 / (math.sqrt(2) - 1), 0.0], abs=2e-3)
    assert np.allclose(out.covariance(), rotated(30, (4.0 * math.exp(-0.1 / (math.sqrt(2) - 1)), 1.0)), atol=0.02)
    assert out.array.sum() == pytest.approx(1.0)
    assert out.provenance["refinement"] == {"applied": True, "scored": "whole image"}
    assert record["scored"] == {"refined": "whole image", "control": "whole image",
                                "draws": ["whole image"] * (len(calls) - 1)}
    assert record["linear"] == [True, True] or sorted(record["log_scales"])[1] == 0.0


def test_the_widening_is_measured_against_the_control_refit(monkeypatch, rng):
    # The control refit (no noise added, from the refined kernel) already widens the major axis by
    # a log-scale of 0.1 and the noisy refits by 0.15: the noise's share is 0.05, extrapolated as
    # above; a control that moves as much as the noisy refits leaves the kernel as it is.
    refined = refined_kernel(rotated(30, (4.0, 1.0)))
    for noisy, expected in ((0.15, -0.05 / (math.sqrt(2) - 1)), (0.1, 0.0)):
        calls: list = []
        monkeypatch.setattr(kg, "estimate_noise", fake_noise(3.0))
        monkeypatch.setattr(kg, "refine_covariance", fake_refit(
            rotated(30, (4.0 * math.exp(2 * noisy), 1.0)), calls, control=rotated(30, (4.0 * math.exp(0.2), 1.0))))
        out = kg.noise_corrected(refined, rng.random((64, 64, 3)), settings_for("default"))
        assert sorted(out.provenance["noise_correction"]["log_scales"]) == pytest.approx([expected, 0.0], abs=2e-3)
        assert out.provenance["noise_correction"]["applied"] == (expected < 0)


@pytest.mark.parametrize("second_log_scale", [0.05, 0.05 + 2.5 * 0.05 * (math.sqrt(3) - math.sqrt(2)) / (math.sqrt(2) - 1)])
def test_no_correction_where_the_widening_is_not_in_proportion_to_sigma(monkeypatch, rng, second_log_scale):
    # The major axis widens by a log-scale of 0.05 at sqrt(2) sigma; at sqrt(3) sigma either not
    # at all further (the second slope 0) or 2.5 times faster than over the first step: the
    # extrapolation would rest on a widening that is not in proportion to sigma, so that axis is
    # left alone (the minor axis does not widen: nothing to correct there either).
    calls: list = []
    monkeypatch.setattr(kg, "estimate_noise", fake_noise(3.0))
    monkeypatch.setattr(kg, "refine_covariance", fake_refit(
        np.diag([4.0 * math.exp(0.1), 1.0]), calls, second=np.diag([4.0 * math.exp(2 * second_log_scale), 1.0])))
    refined = refined_kernel(np.diag([4.0, 1.0]))
    out = kg.noise_corrected(refined, rng.random((64, 64, 3)), settings_for("default"))
    record = out.provenance["noise_correction"]
    assert np.array_equal(out.array, refined.array) and not record["applied"]
    assert record["linear"] == [False, False] and record["log_scales"] == [0.0, 0.0]
    assert max(record["widening_log_scales"][1]) == pytest.approx(second_log_scale, abs=1e-3)


@pytest.mark.parametrize("scored", [("in-focus tiles", "whole image"), ("whole image", "in-focus tiles"),
                                    ("whole image", "whole image", "in-focus tiles")])
def test_no_correction_when_a_refit_scores_other_pixels(monkeypatch, rng, scored):
    # The refined kernel scored the whole image; a refit (the control, or one noisy draw) that
    # scores the in-focus tiles measures the switch, not the noise: nothing is corrected, however
    # wide the noisy refits came out.
    calls: list = []
    monkeypatch.setattr(kg, "estimate_noise", fake_noise(3.0))
    monkeypatch.setattr(kg, "refine_covariance", fake_refit(np.diag([8.0, 2.0]), calls, scored=scored))
    refined = refined_kernel(np.diag([4.0, 1.0]))
    out = kg.noise_corrected(refined, rng.random((64, 64, 3)), settings_for("default"))
    record = out.provenance["noise_correction"]
    assert np.array_equal(out.array, refined.array) and not record["applied"]
    assert record["skipped"] == kg.PIXELS_SWITCHED == "a refit scored other pixels than the refinement"
    assert "in-focus tiles" in [record["scored"]["control"], *record["scored"]["draws"]]


def test_the_implausible_whole_image_fit_counts_as_the_in_focus_tiles(monkeypatch, rng):
    # Both score the in-focus tiles (one after rejecting its whole-image fit): the same pixels.
    calls: list = []
    monkeypatch.setattr(kg, "estimate_noise", fake_noise(3.0))
    monkeypatch.setattr(kg, "refine_covariance", fake_refit(
        np.diag([4.0 * math.exp(0.1), 1.0]), calls, scored=("in-focus tiles (the whole-image fit was implausible)",)))
    out = kg.noise_corrected(refined_kernel(np.diag([4.0, 1.0]), "in-focus tiles"), rng.random((64, 64, 3)),
                             settings_for("default"))
    assert out.provenance["noise_correction"]["applied"]


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
    # The control refit sees the image as it is, each noisy one the image plus white noise of each
    # channel's own fitted sigma (8-bit units), times 1 and sqrt(2) for the two levels.
    seen: list = []

    def refit(kernel, rgb, scale, fit_noise=True, shape="kernel"):
        seen.append(rgb.copy())
        return kernel
    monkeypatch.setattr(kg, "estimate_noise", lambda rgb, k, s: {"sigma": 3.0, "per_channel": [2.0, 3.0, 4.0]})
    monkeypatch.setattr(kg, "refine_covariance", refit)
    image = np.random.default_rng(3).uniform(0.3, 0.7, (400, 400, 3))
    kg.noise_corrected(refined_kernel(np.diag([2.0, 2.0])), image, settings_for("default"))
    prepared = kg.prepare_image(image, settings_for("default"))
    assert len(seen) == 1 + 2 * kg.NOISE_CORRECTION_DRAWS and np.array_equal(seen[0], prepared)  # the control
    for call, factor in ((1, 1.0), (2, 1.0), (3, math.sqrt(2)), (4, math.sqrt(2))):
        # sqrt(2) then sqrt(3) times the image's sigma in all: sigma, then sqrt(2) sigma added
        added = (seen[call] - prepared).reshape(-1, 3).std(axis=0) * 255.0
        assert added == pytest.approx([2.0 * factor, 3.0 * factor, 4.0 * factor], rel=0.01)
    assert not np.array_equal(seen[1], seen[2]) and not np.array_equal(seen[3], seen[4])  # two draws each


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
