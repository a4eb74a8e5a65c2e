"""The marginal-likelihood kernel score and the covariance refinement built on it."""
from __future__ import annotations

import math

import numpy as np
import pytest

from scipy import ndimage
from scipy.optimize import minimize

import blindsr.estimators.likelihood as likelihood
from blindsr.degradation import degrade, gaussian_kernel, quantize
from blindsr.estimators.likelihood import (LRLikelihood, affine_warp, conjugate_half, periodic_component,
                                           profile_tiles, refine_covariance, tile_evidence)
from blindsr.kernel import SRKernel
from blindsr.runtime import can_fork, torch_threads


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


def power_law_field(rng: np.random.Generator, size: int, scene_blur: float = 0.0) -> np.ndarray:
    """An RGB image whose luminance is a Gaussian field with a 1/|w|^2 spectrum (the model's
    prior), softened by a Gaussian blur of variance ``scene_blur`` px^2 (the prior a narrow fit
    is redone with), in [0, 1]."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / size)
    amplitude *= np.exp(-scene_blur * (2 * np.pi) ** 2 * (fy ** 2 + fx ** 2) / 2)
    field = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((size, size))) * amplitude))
    field = (field - field.min()) / np.ptp(field)
    return np.clip(field[..., None] * np.array([0.9, 1.0, 0.8]) + 0.05, 0, 1)


@pytest.mark.slow
@pytest.mark.parametrize("sigma, theta", [((2.4, 0.8), 0.5), ((0.7, 0.6), 0.0)])
def test_refinement_recovers_a_known_covariance(rng, sigma, theta):
    """LR made by the reference degradation from a field that fits the model, with a wide
    anisotropic kernel or a narrow one near the bicubic kernel (whose fit is redone with the
    scene's softness in the prior, so its field has that softness); refinement starts from the
    isotropic middle width KernelGAN tends to return (sigma 1.5) and finds the true covariance."""
    narrow = np.mean(np.square(sigma)) < likelihood.NARROW_VARIANCE
    hr = power_law_field(rng, 384, likelihood.SCENE_BLUR if narrow else 0.0)
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
    assert ("narrow_refit" in info) == narrow


@pytest.mark.slow
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


def counted_forked_maps(monkeypatch) -> list[int]:
    """The number of tasks of each ``forked_map`` call the likelihood makes from now on."""
    maps: list[int] = []
    real_map = likelihood.forked_map
    monkeypatch.setattr(likelihood, "forked_map", lambda tasks, threads: maps.append(len(tasks))
                        or real_map(tasks, threads))
    return maps


def with_one_then_two_threads(call):
    """``call()``'s results with one thread in the budget, then with two."""
    results = []
    for threads in (1, 2):
        with torch_threads(threads):
            results.append(call())
    return results


@pytest.mark.skipif(not can_fork(), reason="forked workers on Linux only")
def test_affine_fit_is_the_same_with_its_starts_side_by_side(rng, monkeypatch):
    """With two threads in the budget the fit's two starts search in two processes; the map, the
    values and the count of evaluations are those of the two searches one after another."""
    truth = SRKernel(gaussian_kernel(15, rotation(0.4) @ np.diag([2.2, 0.9]) @ rotation(0.4).T), 2)
    lr = quantize(degrade(power_law_field(rng, 192, 0.0), truth, 2))
    score = LRLikelihood.from_image(lr, 2)
    start = gaussian_kernel(13, np.eye(2) * 1.5 ** 2)
    maps = counted_forked_maps(monkeypatch)
    one, two = with_one_then_two_threads(lambda: likelihood.fit_affine(start, score, 25))
    assert maps == [2]
    assert np.array_equal(one["params"], two["params"])
    assert {k: v for k, v in one.items() if k != "params"} == {k: v for k, v in two.items() if k != "params"}
    assert one["nll_after"] < one["nll_before"] and one["evaluations"] > 2


def test_refinement_keeps_a_kernel_the_likelihood_cannot_improve(rng):
    """A constant image carries no information: nothing scores better than the identity map."""
    flat = np.full((64, 64, 3), 0.5)
    start = SRKernel(gaussian_kernel(13, np.eye(2) * 1.5 ** 2), 2)
    refined = refine_covariance(start, flat, 2)
    assert refined.provenance["refinement"]["applied"] is False
    assert np.array_equal(refined.array, start.array)


@pytest.mark.slow
def test_tile_profile_equals_an_independent_fit_per_tile(rng):
    """The vectorised per-tile (contrast, noise) fit against scipy's L-BFGS-B on each tile alone,
    in float64, from several starts: the same minimum to 0.01 nats out of thousands."""
    base = np.linspace(2.0, 0.01, 1000)
    contrast = rng.uniform(0.1, 10, (12, 1))
    noise = rng.uniform(1e-4, 1e-2, (12, 1))
    noise[:3] = 0.0  # noise-free tiles: the fit sits on the noise floor
    power = rng.exponential(size=(12, 1000)) * (contrast * base + noise)
    weights = np.where(np.arange(1000) % 7 == 0, 1.0, 2.0)
    floor = 1e-6
    values, _ = profile_tiles(power, base, floor, weights, steps=40)
    for tile, value in zip(power, values):
        def nll(p: np.ndarray) -> float:
            variance = math.exp(p[0]) * base + math.exp(p[1])
            return float(np.sum(weights * (tile / variance + np.log(variance))))
        best = min(minimize(nll, start, method="L-BFGS-B", bounds=[(-30, 30), (math.log(floor), 10)]).fun
                   for start in ([0.0, -3.0], [1.0, -9.0], [-2.0, -5.0]))
        assert value == pytest.approx(best, abs=0.01)


def test_conjugate_half_counts_every_frequency_once():
    for rows, cols in ((8, 8), (6, 10), (7, 5)):
        keep, weights = conjugate_half(rows, cols)
        assert weights.sum() == rows * cols - 1  # all but DC, each conjugate pair counted twice
        i, j = np.nonzero(keep)
        pairs = set(zip(i.tolist(), j.tolist()))
        assert not any(((-a) % rows, (-b) % cols) in pairs and ((-a) % rows, (-b) % cols) != (a, b)
                       for a, b in pairs)


def test_tile_evidence_tells_texture_from_flat_tiles(rng):
    """Half a power-law field, half a uniform grey: only the textured tiles are informative, and
    their best width is the true one (the kernel given is the truth)."""
    hr = power_law_field(rng, 256)
    hr[:, 128:] = 0.5
    truth = gaussian_kernel(15, np.eye(2) * 1.1 ** 2)
    lr = quantize(degrade(hr, truth, 2))
    evidence = tile_evidence(likelihood.luma(lr), truth, 2, likelihood.luma_noise(lr), size=32)
    cols = np.array([j for _, j in evidence.corners])
    informative = evidence.informative
    assert informative[cols + 32 <= 60].all() and not informative[cols >= 68].any()
    assert np.median(evidence.best[informative]) == pytest.approx(0.0, abs=0.15)


@pytest.mark.skipif(not can_fork(), reason="forked workers on Linux only")
def test_tile_evidence_is_the_same_with_its_tiles_side_by_side(rng, monkeypatch):
    """With two threads in the budget the tiles are scored in two halves in two processes: the
    same curves bit for bit as in one process, and as each image of a group scored alone (every
    tile's fit is its own); ``sources`` says which image each tile is from."""
    truth = gaussian_kernel(13, np.eye(2) * 1.3 ** 2)
    grays = [likelihood.luma(quantize(degrade(power_law_field(rng, size), truth, 2))) for size in (224, 160)]
    noise = likelihood.ROUNDING_NOISE
    maps = counted_forked_maps(monkeypatch)
    one, two = with_one_then_two_threads(lambda: tile_evidence(grays, truth, 2, noise, size=32, most=40))
    assert maps == [2] and len(one.best) >= likelihood.MIN_SPLIT_TILES
    assert np.array_equal(one.nll, two.nll) and np.array_equal(one.error, two.error)
    with torch_threads(1):
        alone = [tile_evidence(g, truth, 2, noise, size=32, most=20) for g in grays]
    assert np.array_equal(np.concatenate([a.nll for a in alone], axis=1), two.nll)
    assert two.sources.tolist() == [i for i, a in enumerate(alone) for _ in a.best]


def disk(radius: int) -> np.ndarray:
    z = np.arange(-radius, radius + 1)
    d = (z[:, None] ** 2 + z[None, :] ** 2 <= radius ** 2).astype(float)
    return d / d.sum()


@pytest.mark.slow
def test_defocused_background_does_not_widen_the_kernel(rng, monkeypatch):
    """The first failure shape: a sharp centre on a field defocused by a disk of radius 6 HR px
    over ~70% of the frame. Scored on the whole image the fit reads the defocus as kernel blur
    and widens the kernel; scored on the in-focus tiles (the default) it finds the truth."""
    size = 512
    hr = power_law_field(rng, size, likelihood.SCENE_BLUR)  # a narrow kernel follows: a soft scene
    y, x = np.mgrid[:size, :size]
    sharp = ndimage.gaussian_filter((np.hypot(y - size / 2, x - size / 2) < 0.3 * size).astype(float), 2)
    blurred = np.stack([ndimage.correlate(hr[..., c], disk(6), mode="reflect") for c in range(3)], -1)
    scene = sharp[..., None] * hr + (1 - sharp[..., None]) * blurred
    truth_cov = np.diag([1.0, 0.8])
    lr = quantize(degrade(scene, SRKernel(gaussian_kernel(15, truth_cov), 2), 2))
    start = SRKernel(gaussian_kernel(13, np.eye(2) * 1.5 ** 2), 2)
    refined = refine_covariance(start, lr, 2)
    assert refined.provenance["refinement"]["scored"] == "in-focus tiles"
    assert np.allclose(second_moments(refined.array), truth_cov, rtol=0.08, atol=0.03)
    monkeypatch.setattr(likelihood, "WHOLE_IMAGE_SHARE", 0.0)
    whole = second_moments(refine_covariance(start, lr, 2).array)
    assert np.linalg.det(whole) > 1.25 * np.linalg.det(truth_cov)


def hand_evidence(best: list[float], error: list[float]) -> likelihood.TileEvidence:
    """Tile evidence with the given per-tile best widths and errors (the rest unused)."""
    n = len(best)
    return likelihood.TileEvidence([(0, 0)] * n, 64, np.zeros((n, 1, 1)), np.zeros((1, n)),
                                   np.array(best, dtype=float), np.array(error, dtype=float))


def test_softer_content_alone_does_not_switch_to_the_in_focus_tiles():
    """Twelve tiles at width 0 and eight at 0.35, equally certain: the reference (the weighted
    25% quantile) is 0, so only the twelve are in focus (12 < 0.8 x 20), but none is wider by more
    than OUT_OF_FOCUS_MARGIN (0.4): a plain photo's softer content, scored whole. Two tiles at
    0.8, or two flat tiles (infinite error), are a defocused or flat region: the in-focus tiles are."""
    assert likelihood.OUT_OF_FOCUS_MARGIN == 0.4 and likelihood.MIN_OUT_OF_FOCUS == 2
    plain = hand_evidence([0.0] * 12 + [0.35] * 8, [0.05] * 20)
    assert plain.reference() == 0.0
    tiles = likelihood.tile_summary(plain, plain.sharp())
    assert (tiles["in_focus"], tiles["out_of_focus"]) == (12, 0)
    assert not likelihood.scores_in_focus_tiles(tiles)
    for extra, error in ((0.8, 0.05), (0.0, math.inf)):
        evidence = hand_evidence([0.0] * 12 + [0.35] * 6 + [extra] * 2, [0.05] * 18 + [error] * 2)
        tiles = likelihood.tile_summary(evidence, evidence.sharp())
        assert (tiles["in_focus"], tiles["out_of_focus"]) == (12, 2)
        assert likelihood.scores_in_focus_tiles(tiles)
    # In focus on 80% of the tiles: the whole image, whatever else the tiles show.
    mostly = hand_evidence([0.0] * 16 + [0.9] * 4, [0.05] * 20)
    assert not likelihood.scores_in_focus_tiles(likelihood.tile_summary(mostly, mostly.sharp()))
    # The rule before (the in-focus share alone) scores the plain photo's in-focus tiles; a rule
    # asking for three clearly defocused tiles does not switch on two.
    share_alone = likelihood.FocusRule(math.inf, 0)
    assert likelihood.scores_in_focus_tiles(likelihood.tile_summary(plain, plain.sharp(), share_alone), share_alone)
    three = likelihood.FocusRule(0.4, 3)
    assert not likelihood.scores_in_focus_tiles(likelihood.tile_summary(evidence, evidence.sharp(), three), three)


def test_mildly_softer_half_is_scored_as_one_scene(rng):
    """Half the frame a little softer, as a photo's content varies (a Gaussian of sigma 1.6 HR px
    on top of the camera's sigma-1.41 kernel: sqrt(2 + 1.6^2) / sqrt(2) = e^0.41 the width by the
    second moments; the tiles measure about e^0.3): fewer than 80% of the tiles are in focus,
    none is clearly out of focus, and the whole image is scored."""
    size = 512
    hr = power_law_field(rng, size)
    soft = np.stack([ndimage.gaussian_filter(hr[..., c], 1.6, mode="reflect") for c in range(3)], -1)
    x = np.arange(size)[None, :]
    right = ndimage.gaussian_filter1d((x >= size / 2).astype(float), 2, axis=1)[..., None]
    scene = (1 - right) * hr + right * soft
    truth = SRKernel(gaussian_kernel(15, 2 * np.eye(2)), 2)
    lr = quantize(degrade(scene, truth, 2))
    info = refine_covariance(truth, lr, 2).provenance["refinement"]
    tiles = info["tiles"]
    assert "narrow_refit" not in info
    assert tiles["in_focus"] < likelihood.WHOLE_IMAGE_SHARE * tiles["count"]
    assert tiles["out_of_focus"] < likelihood.MIN_OUT_OF_FOCUS
    assert info["scored"] == "whole image"


def test_half_flat_frame_keeps_the_kernel(rng):
    """The second failure shape: half the frame a sky (a curved colour gradient with faint
    low-frequency variation, above a wavy horizon): the refinement still finds the covariance."""
    size = 512
    hr = power_law_field(rng, size, likelihood.SCENE_BLUR)  # a narrow kernel follows: a soft scene
    y, x = np.mgrid[:size, :size]
    low = ndimage.gaussian_filter(rng.standard_normal((size, size)), 48)
    sky = (0.55 + 0.35 * (y / size) ** 2 + 0.12 * low / np.abs(low).max())[..., None] * np.array([0.6, 0.8, 1.0])
    top = ndimage.gaussian_filter((y < size / 2 + 10 * np.sin(x / 25.0)).astype(float), 1)[..., None]
    scene = np.clip(top * sky + (1 - top) * hr, 0, 1)
    truth_cov = np.array([[1.3, 0.3], [0.3, 0.7]])
    lr = quantize(degrade(scene, SRKernel(gaussian_kernel(15, truth_cov), 2), 2))
    start = SRKernel(gaussian_kernel(13, np.eye(2) * 1.5 ** 2), 2)
    refined = refine_covariance(start, lr, 2)
    tiles = refined.provenance["refinement"]["tiles"]
    assert tiles["informative"] < tiles["count"]  # the sky's tiles say nothing
    assert np.allclose(second_moments(refined.array), truth_cov, rtol=0.1, atol=0.05)


@pytest.mark.slow
def test_narrow_kernel_on_a_photo_is_refitted_with_the_scene_softness(chelsea_hr):
    """The third failure shape: a sharp camera kernel, close to the bicubic one, on a photo. The
    photo's own softness reads as kernel blur and the plain fit comes out far too wide (mean
    variance above 1 px^2 for a true 0.65); the refit with the scene's softness in the prior lands
    within 0.3 px^2 of the truth, and its LR reconstruction within 2 dB of the bicubic kernel's."""
    from blindsr.degradation import bicubic_kernel
    from blindsr.metrics import lr_psnr

    truth_cov = np.diag([0.7, 0.6])
    truth = SRKernel(gaussian_kernel(15, truth_cov), 2)
    lr = quantize(degrade(chelsea_hr, truth, 2))
    start = SRKernel(gaussian_kernel(13, np.eye(2) * 1.5 ** 2), 2)
    refined = refine_covariance(start, lr, 2)
    refit = refined.provenance["refinement"]["narrow_refit"]
    assert refit["first_mean_variance"] > 1.0  # the plain fit: too wide
    found = np.trace(second_moments(refined.array)) / 2
    assert abs(found - np.trace(truth_cov) / 2) < 0.3
    assert lr_psnr(chelsea_hr, refined, lr, 2) > lr_psnr(chelsea_hr, bicubic_kernel(2), lr, 2) - 2.0


def ring_kernel() -> np.ndarray:
    """A 13x13 ring of radius 3.5 px: a shape no affine map can make look like the bicubic kernel."""
    rows, cols = np.mgrid[-6:7, -6:7]
    ring = np.exp(-(np.hypot(rows, cols) - 3.5) ** 2 / (2 * 0.5 ** 2))
    return ring / ring.sum()


def test_refinement_scores_the_bicubic_kernel_on_the_same_pixels(rng):
    """The refinement records the bicubic kernel's score on the pixels it scored (what
    bench-robust-tune compares with the estimate's): when the photo was made with the bicubic kernel and the
    estimate is a ring, the bicubic kernel scores better than the ring's best affine map; when it
    was made with a wide Gaussian, the refined estimate scores far better than the bicubic kernel."""
    from blindsr.degradation import bicubic_kernel
    from tests.conftest import textured_image

    hr = textured_image(rng, 192, 192)
    lr = quantize(degrade(hr, bicubic_kernel(2), 2))
    info = refine_covariance(SRKernel.from_array(ring_kernel(), 2), lr, 2).provenance["refinement"]
    assert info["scored"] == "whole image" and "narrow_refit" not in info
    assert info["nll_bicubic"] == pytest.approx(LRLikelihood.from_image(lr, 2)(bicubic_kernel(2).array), abs=1e-9)
    assert info["nll_bicubic"] < info["nll_after"] - 0.05
    wide = SRKernel(gaussian_kernel(15, np.eye(2) * 2.2 ** 2), 2)
    info = refine_covariance(wide, quantize(degrade(hr, wide, 2)), 2).provenance["refinement"]
    assert info["nll_after"] < info["nll_bicubic"] - 1.0


def blurred_group(rng: np.random.Generator, kernel: np.ndarray, count: int = 3, size: int = 256) -> list[np.ndarray]:
    """``count`` LR images of one camera: model-fitting fields degraded with ``kernel`` at x2."""
    return [quantize(degrade(power_law_field(rng, size), SRKernel.from_array(kernel, 2), 2)) for _ in range(count)]


@pytest.mark.slow
def test_shape_selection_sheds_the_scatter_of_a_gaussian_camera(rng):
    """A group made with an anisotropic Gaussian, and a start with KernelGAN-like scatter in its
    taps (each x (1 + U(-0.25, 0.25))): the pooled likelihood prefers the Gaussian of the refined
    kernel's covariance, which lies closer to the truth than the refined scattered shape."""
    from blindsr.metrics import kernel_psnr

    truth_cov = rotation(0.6) @ np.diag([2.6, 1.1]) @ rotation(0.6).T
    truth = gaussian_kernel(15, truth_cov)
    group = blurred_group(rng, truth)
    start = SRKernel.from_array(truth * (1 + rng.uniform(-0.25, 0.25, truth.shape)), 2, order=1)
    kept = refine_covariance(start, group, 2)
    selected = refine_covariance(start, group, 2, shape="select")
    record = selected.provenance["shape"]
    assert record["chosen"] == "gaussian" and record["nll"]["gaussian"] < record["nll"]["kernel"]
    timeless = [{k: v for k, v in x.provenance["refinement"].items() if k != "seconds"} for x in (selected, kept)]
    assert timeless[0] == timeless[1]  # KernelGAN's shape's refinement: what the confidence reads
    reference = SRKernel(truth, 2)
    assert kernel_psnr(selected, reference) > kernel_psnr(kept, reference) + 1.0
    assert np.allclose(second_moments(selected.array), truth_cov, rtol=0.1, atol=0.05)


@pytest.mark.slow
def test_shape_selection_keeps_a_defocus_disk(rng):
    """A group made with a defocus disk (radius 3 HR px), the disk as the start: the Gaussian of
    its covariance has no zeros in its transfer where the disk's has them, the likelihood sees it,
    and the disk is kept as it was refined."""
    truth = np.pad(disk(3), 2)
    group = blurred_group(rng, truth)
    start = SRKernel.from_array(truth, 2, order=1)
    kept = refine_covariance(start, group, 2)
    selected = refine_covariance(start, group, 2, shape="select")
    record = selected.provenance["shape"]
    assert record["chosen"] == "kernel" and record["nll"]["kernel"] < record["nll"]["gaussian"] - 0.01
    assert np.array_equal(selected.array, kept.array)
    with pytest.raises(ValueError, match="shape"):
        refine_covariance(start, group, 2, shape="disk")


def bumpy_narrow_kernel() -> np.ndarray:
    """A sharp kernel (mean principal variance about 0.8 HR px^2) carrying a fine, asymmetric
    scatter, as KernelGAN's averaged runs leave it."""
    rows, cols = np.mgrid[-6:7, -6:7]
    k = np.exp(-(rows ** 2 / 0.9 + cols ** 2 / 0.7) / 2)
    k = k * (1 + 0.3 * np.cos(2.5 * rows + 1.0) * np.sin(1.7 * cols))
    k[5, 8] += 0.05
    return k / k.sum()


def test_narrow_kernel_is_handed_over_as_the_gaussian_of_its_covariance():
    """A narrow kernel becomes the sampled Gaussian of its own second moments (built here from
    the formula); a wide one comes back unchanged. Both choices are recorded."""
    narrow = SRKernel(bumpy_narrow_kernel(), 2)
    n = narrow.size  # second moments about the canvas centre: a handed-off kernel is centred there
    rows, cols = np.mgrid[0:n, 0:n] - (n - 1) / 2
    cov = np.array([[np.sum(narrow.array * rows * rows), np.sum(narrow.array * rows * cols)],
                    [np.sum(narrow.array * rows * cols), np.sum(narrow.array * cols * cols)]])
    assert np.trace(cov) / 2 < likelihood.NARROW_VARIANCE
    shaped = likelihood.gaussian_if_narrow(narrow)
    assert shaped.provenance["shape"]["chosen"] == "gaussian"
    n = shaped.size
    rows, cols = np.mgrid[0:n, 0:n] - (n - 1) / 2
    x = np.stack([rows, cols], axis=-1)
    expected = np.exp(-0.5 * np.einsum("...i,ij,...j->...", x, np.linalg.inv(cov), x))
    np.testing.assert_allclose(shaped.array, expected / expected.sum(), atol=1e-12)
    np.testing.assert_allclose(second_moments(shaped.array), cov, atol=1e-4)  # sampled: ~2e-5

    wide = SRKernel(gaussian_kernel(15, np.diag([2.5, 1.5])), 2)
    kept = likelihood.gaussian_if_narrow(wide)
    assert kept.provenance["shape"]["chosen"] == "kernel"
    np.testing.assert_array_equal(kept.array, wide.array)


def test_refinement_hands_a_narrow_fit_over_as_a_gaussian(chelsea_hr):
    """``shape="gaussian_if_narrow"`` is KernelGAN's shape refined as before, then the rule: the
    sharp camera on a photo ends as the Gaussian of the refined kernel's covariance."""
    truth = SRKernel(gaussian_kernel(15, np.diag([0.7, 0.6])), 2)
    lr = quantize(degrade(chelsea_hr, truth, 2))
    start = SRKernel(bumpy_narrow_kernel(), 2)
    plain = refine_covariance(start, lr, 2, shape="kernel")
    shaped = refine_covariance(start, lr, 2, shape="gaussian_if_narrow")
    assert shaped.provenance["shape"]["chosen"] == "gaussian"
    np.testing.assert_array_equal(shaped.array, likelihood.gaussian_if_narrow(plain).array)
    fits = [{k: x.provenance["refinement"][k] for k in ("scored", "log_scales", "angle_rad", "nll_after")}
            for x in (shaped, plain)]
    assert fits[0] == fits[1]
