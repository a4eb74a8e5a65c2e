"""The degradation map: P @ vec(k) with column-major flattening, noise channel, stretching."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import srmd
from blindsr.degradation import gaussian_kernel
from tests.conftest import PCA_FILE, need

# P @ vec(delta), the spec's checked reference (bicubic degradation = a delta kernel).
DELTA_CODE = np.array([-1.1236e-08, -1.3690e-08, 1.8564e-02, 2.8607e-08, 3.3529e-02, 8.3727e-08,
                       -2.5442e-07, -3.1623e-02, -1.3517e-02, -1.1047e-08, 3.8475e-02, 3.7947e-08,
                       -2.4492e-01, -8.0221e-01, -5.4055e-01])


def delta() -> np.ndarray:
    k = np.zeros((15, 15))
    k[7, 7] = 1.0
    return k


def anisotropic() -> np.ndarray:
    """Elongated along the rows' direction at 30 degrees: not symmetric under transposition."""
    theta = np.pi / 6
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return gaussian_kernel(15, rot @ np.diag([6.0, 0.5]) @ rot.T)


def test_delta_code_matches_reference():
    pca = srmd.load_pca(need(PCA_FILE))
    code = srmd.kernel_code(delta(), pca)
    np.testing.assert_allclose(code, DELTA_CODE, atol=2e-6, rtol=1e-3)


def test_flattening_is_column_major():
    """Against an independent reference: MATLAB's k(:) is the row-major flattening of k.T."""
    rng = np.random.default_rng(0)
    pca = rng.standard_normal((15, 225))
    k = anisotropic()
    np.testing.assert_allclose(srmd.kernel_code(k, pca), pca @ k.T.ravel(), rtol=1e-12)
    assert not np.allclose(srmd.kernel_code(k, pca), pca @ k.ravel())


def test_transposition_flips_four_components_of_the_official_code():
    pca = srmd.load_pca(need(PCA_FILE))
    k = anisotropic()
    code, transposed = srmd.kernel_code(k, pca), srmd.kernel_code(k.T, pca)
    # P is stored in float32: its symmetries hold to ~1e-7.
    changed = np.abs(code - transposed) > 1e-5
    assert changed.sum() == 4
    np.testing.assert_allclose(transposed[changed], -code[changed], atol=1e-5)
    assert np.abs(code[changed]).min() > 1e-3
    # The basis is 180-degree symmetric: a flipped kernel (convolution vs correlation) codes the same.
    np.testing.assert_allclose(srmd.kernel_code(k[::-1, ::-1], pca), code, atol=1e-6)


def test_degradation_vector_and_network_input():
    code = np.arange(15, dtype=np.float64)
    vector = srmd.degradation_vector(code, 25.5, noise_free=False)
    assert vector.shape == (16,) and vector[-1] == pytest.approx(0.1)
    assert srmd.degradation_vector(code, 0.0, noise_free=True).shape == (15,)
    rgb = torch.rand(2, 3, 5, 4)
    x = srmd.network_input(rgb, torch.as_tensor(vector, dtype=torch.float32))
    assert x.shape == (2, 19, 5, 4)
    assert torch.equal(x[:, :3], rgb)
    for c in range(16):
        assert torch.all(x[:, 3 + c] == torch.tensor(vector[c], dtype=torch.float32))


def test_shape_errors():
    with pytest.raises(ValueError, match="15x15"):
        srmd.kernel_code(np.ones((13, 13)), np.zeros((15, 225)))
    with pytest.raises(ValueError, match="15, 225"):
        srmd.kernel_code(delta(), np.zeros((15, 169)))
    with pytest.raises(ValueError, match="15-component"):
        srmd.degradation_vector(np.zeros(12), 0, noise_free=True)


def test_load_pca_checks_the_variable(tmp_path):
    from scipy import io as sio

    sio.savemat(tmp_path / "other.mat", {"Q": np.zeros((15, 225))})
    with pytest.raises(ValueError, match="'P'"):
        srmd.load_pca(tmp_path / "other.mat")
    sio.savemat(tmp_path / "small.mat", {"P": np.zeros((15, 100))})
    with pytest.raises(ValueError, match="shape"):
        srmd.load_pca(tmp_path / "small.mat")
