"""The hard set (benchmarks/hard_set.py): its hand-shake kernels are physical, centred,
reproducible, and the x4 kernel is what two x2 steps compose to; its camera sharpening is an
unsharp mask, and the sharpened and plain parts differ by it alone; its linear parts blur the
linear light."""
from __future__ import annotations

import numpy as np

from benchmarks.hard_set import SHAKE_LENGTH, SHAKE_OPTICS, low_resolution, make_part, shake_kernels, unsharp_mask
from blindsr.degradation import DIV2KRK_EIGEN_RANGE, degrade, gaussian_kernel, quantize
from tests.conftest import BSD100RK, need


def moments(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre of mass (row, col) and covariance of a kernel, in float64 loops over its taps."""
    total = k.sum()
    rows, cols = np.indices(k.shape)
    centre = np.array([(k * rows).sum(), (k * cols).sum()]) / total
    d = np.stack([rows - centre[0], cols - centre[1]])
    cov = np.array([[(k * d[i] * d[j]).sum() / total for j in range(2)] for i in range(2)])
    return centre, cov


def test_shake_kernels_are_centred_normalised_and_compose_to_x4():
    for seed in range(6):
        kernels, params = shake_kernels(np.random.default_rng(seed))
        k2, k4 = kernels[2], kernels[4]
        assert k2.shape == (11, 11) and k4.shape == (31, 31)
        for k in (k2, k4):
            assert k.min() >= 0 and abs(k.sum() - 1) < 1e-12
        centre2, cov2 = moments(k2)
        centre4, cov4 = moments(k4)
        np.testing.assert_allclose(centre2, [5, 5], atol=1e-3)  # the canvas cuts a faint tail
        np.testing.assert_allclose(centre4, [15, 15], atol=1e-3)
        # Covariances add under convolution, and spreading k2 by 2 multiplies its own by 4.
        np.testing.assert_allclose(cov4, 5 * cov2, atol=1e-12)
        assert SHAKE_LENGTH[0] <= params["length_px"] <= SHAKE_LENGTH[1]
        assert all(SHAKE_OPTICS[0] <= v <= SHAKE_OPTICS[1] for v in params["optics_eigenvalues"])
        # A motion streak: elongated beyond the round lens blur alone.
        eigen = np.linalg.eigvalsh(cov2)
        assert eigen[1] > SHAKE_OPTICS[1] and eigen[1] > 1.2 * eigen[0]


def test_shake_kernels_are_reproducible_and_differ_between_draws():
    a, _ = shake_kernels(np.random.default_rng(7))
    b, _ = shake_kernels(np.random.default_rng(7))
    c, _ = shake_kernels(np.random.default_rng(8))
    assert np.array_equal(a[2], b[2]) and np.array_equal(a[4], b[4])
    assert not np.allclose(a[2], c[2])


def test_unsharp_mask_is_one_plus_amount_minus_amount_gaussian():
    """An impulse's response is (1 + a) delta - a g, g the Gaussian of sigma r sampled and
    normalised over +-4 sigma (written out here in numpy); a flat image is unchanged."""
    r, a = 1.2, 0.9
    image = np.zeros((41, 41, 3))
    image[20, 20] = 1.0
    half = int(4 * r + 0.5)
    x = np.arange(-half, half + 1)
    g1 = np.exp(-x**2 / (2 * r**2))
    g = np.outer(g1, g1) / g1.sum()**2
    expected = -a * np.pad(g, 20 - half)
    expected[20, 20] += 1 + a
    out = unsharp_mask(image, r, a)
    for c in range(3):
        np.testing.assert_allclose(out[..., c], expected, atol=1e-12)
    flat = np.full((16, 16, 3), 0.3)
    np.testing.assert_allclose(unsharp_mask(flat, r, a), flat, atol=1e-12)


def test_sharpened_and_plain_parts_differ_by_the_mask_alone(tmp_path):
    """sharp_tune/ and sharp_tune_plain/ draw the same kernels, noise and JPEG quality; the
    sharpened LR image carries more high-frequency energy than the plain one."""
    from PIL import Image

    source = need(BSD100RK / "gt" / "im_1.png").parents[2]
    made = {v: make_part(source, "BSD100RK", [1], tmp_path / v, 4012, (v,), DIV2KRK_EIGEN_RANGE)[0]
            for v in ("sharpened", "unsharpened")}
    same = ("eigenvalues", "theta", "noise_sigma", "jpeg_quality")
    assert all(made["sharpened"][k] == made["unsharpened"][k] for k in same)
    assert "unsharp_mask" in made["sharpened"] and "unsharp_mask" not in made["unsharpened"]
    kernels = [np.load(tmp_path / v / "gt_k_x2" / "kernel_1.npy") for v in ("sharpened", "unsharpened")]
    np.testing.assert_array_equal(*kernels)
    lr = [np.asarray(Image.open(tmp_path / v / "lr_x2" / "im_1.png"), dtype=np.float64)
          for v in ("sharpened", "unsharpened")]
    laplacian = [np.abs(np.diff(x, 2, axis=0)).mean() for x in lr]
    assert laplacian[0] > 1.2 * laplacian[1]


def test_linear_light_low_resolution_blurs_the_decoded_scene():
    """The linear parts' LR image: the protocol's blur and sampling of the scene's linear light
    (the sRGB curve written out here again), encoded and rounded to 8 bits."""
    rng = np.random.default_rng(3)
    scene = np.round(rng.random((40, 36, 3)) * 255) / 255
    k = gaussian_kernel(13, np.array([[1.8, 0.4], [0.4, 1.1]]))
    decoded = np.where(scene <= 0.04045, scene / 12.92, ((scene + 0.055) / 1.055) ** 2.4)
    blurred = np.clip(degrade(decoded, k, 2), 0, 1)
    expected = np.where(blurred <= 0.0031308, blurred * 12.92, 1.055 * blurred ** (1 / 2.4) - 0.055)
    lr = low_resolution(scene, k, 2, None, 0.0, rng, None, "linear")
    np.testing.assert_array_equal(lr, quantize(expected))
    assert not np.array_equal(lr, low_resolution(scene, k, 2, None, 0.0, rng))


def test_linear_and_plain_parts_differ_by_where_the_blur_acted(tmp_path):
    source = need(BSD100RK / "gt" / "im_1.png").parents[2]
    made = {v: make_part(source, "BSD100RK", [1], tmp_path / v, 4014, (v,), DIV2KRK_EIGEN_RANGE)[0]
            for v in ("linear", "plain")}
    assert made["linear"]["light"] == "linear" and "light" not in made["plain"]
    kernels = [np.load(tmp_path / v / "gt_k_x2" / "kernel_1.npy") for v in ("linear", "plain")]
    np.testing.assert_array_equal(*kernels)
