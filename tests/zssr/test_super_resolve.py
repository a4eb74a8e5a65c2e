"""End to end: alignment with the HR image, consistency with the LR image, gradual x4,
determinism, the bicubic-only mode and input checks (short runs on small synthetic images)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from blindsr.degradation import degrade, gaussian_kernel, random_kernels
from tests.conftest import textured_image
from zssr import preset, stages, super_resolve, work

SHORT = {"max_iters": 2, "crop_size": 16}


def subpixel_shift(a: np.ndarray, b: np.ndarray, reach: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Integer offset (rows, cols) maximising the cross-correlation of the Laplacians of a and b
    (b ~ a shifted by the offset), and the offset refined by a parabola through the peak's
    neighbours along each axis. The Laplacian sharpens the peak, which keeps the parabola from
    locking onto whole pixels."""
    a = ndimage.laplace(a)
    b = ndimage.laplace(b)
    m = reach
    core = a[m:-m, m:-m]
    scores = np.array([[np.sum(core * b[m + dy:b.shape[0] - m + dy, m + dx:b.shape[1] - m + dx])
                        for dx in range(-m, m + 1)] for dy in range(-m, m + 1)])
    peak = np.unravel_index(np.argmax(scores), scores.shape)
    refined = []
    for axis in (0, 1):
        idx = list(peak)
        values = []
        for d in (-1, 0, 1):
            idx[axis] = peak[axis] + d
            values.append(scores[tuple(idx)])
        lo, mid, hi = values
        refined.append(peak[axis] - m + 0.5 * (lo - hi) / (lo - 2 * mid + hi))
    return np.array(peak) - m, np.array(refined)


def smooth_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """Band-limited colour noise in [0, 1]: little aliasing in its LR version, so a short run
    restores it without artefacts that would bias the shift estimate."""
    x = ndimage.gaussian_filter(rng.random((size, size, 3)), (1.5, 1.5, 0))
    return (x - x.min()) / np.ptp(x)


# Anisotropic and tilted, but point symmetric: the blur itself moves no correlation peak.
TILTED = gaussian_kernel(11, np.array([[2.5, 1.0], [1.0, 1.2]]))
# 10 back-projection rounds pull a 60-iteration result firmly onto the kernel's sampling grid.
ALIGNMENT_RUN = {"max_iters": 60, "crop_size": 32, "back_projection_iters": 10}


@pytest.fixture(scope="module")
def x2_case():
    hr = smooth_image(np.random.default_rng(7), 96)
    lr = degrade(hr, TILTED, 2)
    result = super_resolve(lr, 2, [TILTED], preset("kernelgan", **ALIGNMENT_RUN), seed=0)
    return hr, lr, result


def test_shift_estimator_sees_half_a_pixel():
    """The misalignment the handoff convention rules out (0.5 px, the '/' vs '//' bug of ZSSR's
    Python-3 ports) reads as such."""
    gray = textured_image(np.random.default_rng(1), 96, 96).mean(-1)
    _, refined = subpixel_shift(gray, ndimage.shift(gray, (0.5, -0.5), order=3, mode="reflect"))
    assert np.allclose(refined, (0.5, -0.5), atol=0.05)
    _, still = subpixel_shift(gray, gray)
    assert np.all(np.abs(still) < 0.01)


def test_output_is_aligned_with_hr(x2_case):
    hr, _, result = x2_case
    assert result.image.shape == hr.shape and result.image.dtype == np.float64
    offset, refined = subpixel_shift(hr.mean(-1)[8:-8, 8:-8], result.image.mean(-1)[8:-8, 8:-8])
    assert tuple(offset) == (0, 0)
    assert np.all(np.abs(refined) < 0.1), refined


def test_subpixel_body_is_aligned_with_hr(x2_case):
    """The fast preset's network writes each input pixel's s x s block where block-centre
    sampling puts it: a pixel-shuffle off by one block or a half-pixel would show here."""
    hr, lr, _ = x2_case
    result = super_resolve(lr, 2, [TILTED], preset("fast", **ALIGNMENT_RUN), seed=0)
    assert result.image.shape == hr.shape
    offset, refined = subpixel_shift(hr.mean(-1)[8:-8, 8:-8], result.image.mean(-1)[8:-8, 8:-8])
    assert tuple(offset) == (0, 0)
    assert np.all(np.abs(refined) < 0.1), refined
    mse = np.mean((degrade(result.image, TILTED, 2) - lr) ** 2)
    assert 10 * np.log10(1 / mse) > 40


def test_misplaced_kernel_shows_as_a_shift(x2_case):
    """Control: the same run with the kernel's centre moved by half a pixel (what the ports'
    integer-division bug did) gives a visibly shifted result."""
    hr, lr, _ = x2_case
    moved = ndimage.shift(TILTED, (0.5, 0.5), order=3)
    result = super_resolve(lr, 2, [moved / moved.sum()], preset("kernelgan", **ALIGNMENT_RUN), seed=0)
    _, refined = subpixel_shift(hr.mean(-1)[8:-8, 8:-8], result.image.mean(-1)[8:-8, 8:-8])
    assert np.all(refined > 0.2), refined


def test_output_reproduces_lr_through_the_kernel(x2_case):
    _, lr, result = x2_case
    mse = np.mean((degrade(result.image, TILTED, 2) - lr) ** 2)
    assert 10 * np.log10(1 / mse) > 40


def test_diagnostics(x2_case):
    d = x2_case[2].diagnostics
    (stage,) = d["stages"]
    assert stage["scale"] == 2 and stage["iterations"] == 60 and stage["lr_drops"] == []
    assert d["kernel_symmetries"] == [0, 2]  # a tilted Gaussian allows only the half turn
    assert [i for i, _ in stage["reconstruction_mse"]] == [0, 50]
    assert stage["final_reconstruction_mse"] == stage["reconstruction_mse"][-1][1] < 1e-2
    assert d["ensemble_transforms"] == [0] and d["seconds"] > 0


@pytest.mark.parametrize("name, iterations", [("kernelgan", 20), ("fast", 10)])
def test_gradual_x4_and_progress(name, iterations):
    """Both stages run (the fast preset's network has a head per stage) and report every
    iteration; neither short run stops early (kernelgan: no drop before 256 iterations; fast:
    the cosine schedule runs exactly ``max_iters``)."""
    rng = np.random.default_rng(2)
    kernels = random_kernels(rng)
    lr = degrade(textured_image(rng, 96, 80), kernels[4], 4)
    settings = preset(name, max_iters=iterations, crop_size=16)
    ticks = []
    result = super_resolve(lr, 4, [kernels[2].array, kernels[4].array], settings, progress=ticks.append)
    assert result.image.shape == (96, 80, 3) and np.isfinite(result.image).all()
    assert [(s["scale"], s["iterations"]) for s in result.diagnostics["stages"]] == [(2, iterations), (4, iterations)]
    assert sum(ticks) == 2 * iterations == work(lr.shape, 4, settings)
    assert stages(2) == (2,) and stages(4) == (2, 4)


@pytest.mark.parametrize("first", [3, 0])
def test_intermediate_stage_budget(first):
    """``intermediate_iters`` sets the x2 stage's iterations of the gradual x4 (0 skips its
    training: the x4 stage starts from the initial network); the x4 stage keeps ``max_iters``,
    and x2 alone is unaffected."""
    rng = np.random.default_rng(3)
    kernels = random_kernels(rng)
    lr = degrade(textured_image(rng, 96, 80), kernels[4], 4)
    settings = preset("fast", max_iters=5, crop_size=16, intermediate_iters=first)
    ticks = []
    result = super_resolve(lr, 4, [kernels[2].array, kernels[4].array], settings, progress=ticks.append)
    assert np.isfinite(result.image).all()
    assert [(s["scale"], s["iterations"]) for s in result.diagnostics["stages"]] == [(2, first), (4, 5)]
    assert sum(ticks) == first + 5 == work(lr.shape, 4, settings)
    assert work(lr.shape, 2, settings) == 5
    with pytest.raises(ValueError, match="intermediate_iters"):
        preset("fast", intermediate_iters=-1)


def test_early_crops_start_every_stage(monkeypatch):
    """``early_crop_size`` fathers for the first ceil(fraction * iterations) iterations of each
    stage, ``crop_size`` ones after: x2 stage 3 iterations -> 2 early, x4 stage 5 -> 3 early."""
    from zssr.fathers import FatherSampler

    sizes = []
    draw = FatherSampler.draw

    def spy(self):
        father, weights = draw(self)
        sizes.append(father.shape[-1])
        return father, weights

    monkeypatch.setattr(FatherSampler, "draw", spy)
    rng = np.random.default_rng(3)
    kernels = random_kernels(rng)
    lr = degrade(textured_image(rng, 192, 160), kernels[4], 4)  # 48 x 40: both crops fit
    settings = preset("fast", max_iters=5, intermediate_iters=3, crop_size=32, early_crop_size=16)
    super_resolve(lr, 4, [kernels[2].array, kernels[4].array], settings)
    assert sizes == [16, 16, 32, 16, 16, 16, 32, 32]
    assert preset("fast", max_iters=600, early_crop_size=64, early_crop_fraction=0.67).early_crop_iterations() == 402
    assert preset("fast", max_iters=600).early_crop_iterations() == 0
    for bad in ({"early_crop_size": 4}, {"early_crop_size": 64, "early_crop_fraction": 1.5}):
        with pytest.raises(ValueError, match="early_crop"):
            preset("fast", **bad)


def test_deterministic_for_a_seed(rng):
    lr = textured_image(rng, 40, 36)
    settings = preset("real", max_iters=15, crop_size=16)
    a = super_resolve(lr, 2, None, settings, seed=3).image
    b = super_resolve(lr, 2, None, settings, seed=3).image
    c = super_resolve(lr, 2, None, settings, seed=4).image
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_bicubic_mode_with_ensemble(rng):
    lr = textured_image(rng, 30, 40)
    result = super_resolve(lr, 2, None, preset("original", max_iters=10, crop_size=16))
    assert result.image.shape == (60, 80, 3)
    assert result.diagnostics["ensemble_transforms"] == list(range(8))
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0


def test_rejects_bad_inputs(rng):
    lr = rng.random((20, 20, 3))
    k = random_kernels(rng)[2].array
    with pytest.raises(ValueError, match="kernel"):
        super_resolve(lr, 4, [k], preset(**SHORT))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        super_resolve(lr * 2, 2, [k], preset(**SHORT))
    with pytest.raises(ValueError, match="too small"):
        super_resolve(lr[:5], 2, [k], preset(**SHORT))
    with pytest.raises(KeyError, match="unknown ZSSR setting"):
        preset("kernelgan", iterations=3)
    with pytest.raises(KeyError, match="unknown ZSSR preset"):
        preset("turbo")


def test_cuda_device_falls_back_only_when_not_cuda(rng):
    lr = textured_image(rng, 24, 24)
    settings = preset(max_iters=2, crop_size=16)
    assert super_resolve(lr, 2, None, settings, device=torch.device("cpu")).diagnostics["device"] == "cpu"
    if torch.cuda.is_available():
        assert super_resolve(lr, 2, None, settings, device="cuda").diagnostics["device"].startswith("cuda")
