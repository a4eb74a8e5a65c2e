"""The hard set's hand-shake kernels (benchmarks/hard_set.py): physical, centred, reproducible,
and the x4 kernel is what two x2 steps compose to."""
from __future__ import annotations

import numpy as np

from benchmarks.hard_set import SHAKE_LENGTH, SHAKE_OPTICS, shake_kernels


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
