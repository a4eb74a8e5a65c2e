"""Rotations/mirrors: exact inverses, kernels transformed consistently with images, and which
transforms a kernel allows."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from blindsr.degradation import degrade, gaussian_kernel, random_kernels
from zssr.geometry import TRANSFORMS, allowed_transforms, inverse, transform, transform_kernel


@pytest.mark.parametrize("t", TRANSFORMS)
def test_transform_inverts_exactly(rng, t):
    x = torch.as_tensor(rng.random((1, 3, 7, 10)))
    y = transform(x, t)
    assert y.shape[-2:] == ((7, 10) if t % 2 == 0 else (10, 7))
    assert torch.equal(inverse(y, t), x)


def test_transforms_are_the_eight_distinct_symmetries(rng):
    x = torch.as_tensor(rng.random((5, 5)))
    images = {tuple(transform(x, t).flatten().tolist()) for t in TRANSFORMS}
    assert len(images) == 8


@pytest.mark.parametrize("t", TRANSFORMS)
@pytest.mark.parametrize("scale", [2, 4])
def test_kernel_transform_commutes_with_degradation(rng, t, scale):
    """T(degrade(x, k)) == degrade(T(x), T(k)) on sides divisible by s (block centres map to
    block centres), for an asymmetric kernel."""
    k = random_kernels(rng)[scale].array
    hr = rng.random((8 * scale, 5 * scale))
    left = transform(torch.as_tensor(degrade(hr, k, scale)), t).numpy()
    turned = transform(torch.as_tensor(hr), t).numpy()
    right = degrade(turned, np.ascontiguousarray(transform_kernel(k, t)), scale)
    np.testing.assert_allclose(left, right, atol=1e-12)


def test_allowed_transforms():
    iso = gaussian_kernel(11, np.eye(2) * 2.0)
    assert allowed_transforms([iso], 1e-9) == TRANSFORMS
    assert allowed_transforms([None], 0.0) == TRANSFORMS
    # Axis-aligned anisotropic Gaussian: 180-degree rotation and the two axis mirrors.
    axis = gaussian_kernel(11, np.diag([3.0, 1.0]))
    assert allowed_transforms([axis], 1e-9) == (0, 2, 4, 6)
    # Any centred Gaussian is point symmetric; a noisy one (DIV2KRK protocol) is not.
    tilted = gaussian_kernel(11, np.array([[2.0, 0.8], [0.8, 1.0]]))
    assert allowed_transforms([tilted], 1e-9) == (0, 2)
    noisy = random_kernels(np.random.default_rng(3))[2].array
    assert allowed_transforms([noisy], 1e-3) == (0,)
    assert allowed_transforms([iso, tilted], 1e-9) == (0, 2)
