"""Sons: zssr's strided-convolution downscaling equals blindsr's reference degradation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from blindsr.degradation import degrade, gaussian_kernel, imresize, random_kernels
from blindsr.degradation import sampling_kernel as reference_sampling_kernel
from zssr.downscale import Downscaler, sampling_kernel, symmetric_pad


def as_torch(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(x.transpose(2, 0, 1)[None], dtype=torch.float64)


def as_numpy(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sampling_kernel_matches_reference(rng, scale):
    k = random_kernels(rng)[2].array
    np.testing.assert_array_equal(sampling_kernel(k, scale), reference_sampling_kernel(k, scale))


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("shape", [(37, 41), (45, 29), (33, 33), (7, 9)])
def test_son_equals_reference_degradation(rng, scale, shape):
    k = random_kernels(rng)[scale].array
    hr = rng.random(shape + (3,))
    son = Downscaler(k, scale, torch.device("cpu"))(as_torch(hr))
    ref = degrade(hr, k, scale)
    assert son.shape[-2:] == ref.shape[:2] == (-(-shape[0] // scale), -(-shape[1] // scale))
    np.testing.assert_allclose(as_numpy(son), ref, atol=1e-13, rtol=0)


@pytest.mark.parametrize("scale", [2, 4])
def test_banded_son_equals_reference_degradation(rng, scale, monkeypatch):
    """Large images are convolved in bands of output rows: force bands of one to a few rows."""
    import zssr.downscale

    k = random_kernels(rng)[scale].array
    hr = rng.random((53, 47, 3))
    for budget in (1, 3 * 12 * k.shape[0] ** 2 * 5):
        monkeypatch.setattr(zssr.downscale, "BAND_ELEMENTS", budget)
        son = Downscaler(k, scale, torch.device("cpu"))(as_torch(hr))
        np.testing.assert_allclose(as_numpy(son), degrade(hr, k, scale), atol=1e-13, rtol=0)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("shape", [(53, 47), (37, 60), (9, 7)])
def test_fft_son_equals_reference_degradation(rng, scale, shape, monkeypatch):
    """Photo-sized inputs are correlated through the FFT (here every input, by lowering the limit):
    the same numbers as the independent reference degradation, odd sizes and a kernel wider than
    the image included."""
    import zssr.downscale

    monkeypatch.setattr(zssr.downscale, "FFT_ELEMENTS", 0)
    k = random_kernels(rng)[scale].array
    hr = rng.random(shape + (3,))
    son = Downscaler(k, scale, torch.device("cpu"))(as_torch(hr))
    ref = degrade(hr, k, scale)
    assert son.shape[-2:] == ref.shape[:2]
    np.testing.assert_allclose(as_numpy(son), ref, atol=1e-13, rtol=0)


def test_son_of_gaussian_kernel_float32(rng):
    k = gaussian_kernel(11, np.array([[2.0, 0.7], [0.7, 1.0]]))
    hr = rng.random((40, 36, 3))
    son = Downscaler(k, 2, torch.device("cpu"))(as_torch(hr).float())
    np.testing.assert_allclose(as_numpy(son.double()), degrade(hr, k, 2), atol=1e-6)


def test_symmetric_pad_matches_numpy(rng):
    x = rng.random((5, 4))
    for pad in (1, 3, 9):
        out = symmetric_pad(torch.as_tensor(x)[None, None], pad)[0, 0].numpy()
        np.testing.assert_array_equal(out, np.pad(x, pad, mode="symmetric"))


def test_without_kernel_is_matlab_bicubic(rng):
    hr = rng.random((21, 30, 3))
    son = Downscaler(None, 2, torch.device("cpu"))(as_torch(hr))
    np.testing.assert_allclose(as_numpy(son), imresize(hr, 0.5), atol=1e-12)


def test_rejects_bad_kernels():
    with pytest.raises(ValueError):
        Downscaler(np.ones((4, 4)) / 16, 2, torch.device("cpu"))
    with pytest.raises(ValueError):
        Downscaler(np.ones((3, 3)), 2, torch.device("cpu"))
