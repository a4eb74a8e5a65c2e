"""The sharpened-photo benchmark's kernel spread (benchmarks/sharpening.py) against a Gaussian's
known covariance."""
from __future__ import annotations

import numpy as np

from benchmarks.sharpening import spread


def test_spread_is_the_root_of_the_covariance_trace():
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    covariance = rotation @ np.diag([4.0, 1.0]) @ rotation.T
    inverse = np.linalg.inv(covariance)
    z = np.arange(41) - 20.0
    offsets = np.stack(np.meshgrid(z, z, indexing="ij"), axis=-1)
    k = np.exp(-0.5 * np.einsum("...i,ij,...j->...", offsets, inverse, offsets))
    # The canvas holds the Gaussian to far below float64 precision: the sampled moments are the
    # continuous ones (eigenvalues 4 and 1, trace 5) to within 1e-9.
    assert abs(spread(k / k.sum()) - np.sqrt(5.0)) < 1e-9
    # Scaling the taps changes nothing; negative taps count as zero.
    lobed = k.copy()
    lobed[0, 0] = -0.5
    assert abs(spread(3.0 * k) - spread(k)) < 1e-12
    assert abs(spread(lobed) - spread(k)) < 1e-12
