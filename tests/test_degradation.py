from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import io as sio
from scipy import ndimage

from blindsr import degradation
from blindsr.degradation import (bicubic_kernel, bicubic_taps, bicubic_upscale, contributions, degrade, gaussian_kernel, imresize, quantize,
                                 random_kernels, sampling_kernel)
from blindsr.images import read_image
from blindsr.kernel import SRKernel, centre_of_mass
from blindsr.metrics import psnr


def matlab_cubic(x: float) -> float:
    a = abs(x)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a <= 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def reference_matrix(n_in: int, n_out: int, scale: float) -> np.ndarray:
    """MATLAB imresize's 1-D operator as a dense float64 matrix, built pixel by pixel."""
    width = 4.0 / scale if scale < 1 else 4.0
    m = np.zeros((n_out, n_in))
    for j in range(1, n_out + 1):
        u = j / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = []
        for i in range(left, left + math.ceil(width) + 2):
            w = scale * matlab_cubic(scale * (u - i)) if scale < 1 else matlab_cubic(u - i)
            period = (i - 1) % (2 * n_in)
            src = period if period < n_in else 2 * n_in - 1 - period
            taps.append((src, w))
        total = sum(w for _, w in taps)
        for src, w in taps:
            m[j - 1, src] += w / total
    return m


@pytest.mark.parametrize("shape,scale", [((17, 23), 0.5), ((31, 20), 2.0), ((13, 9), 4.0),
                                         ((41, 37), 0.25), ((25, 18), 1 / 3), ((15, 22), 3.0),
                                         ((33, 29), 0.7)])
def test_imresize_matches_float64_reference(rng, shape, scale):
    x = rng.random(shape + (3,))
    out_shape = (math.ceil(shape[0] * scale - 1e-9), math.ceil(shape[1] * scale - 1e-9))
    rows = reference_matrix(shape[0], out_shape[0], scale)
    cols = reference_matrix(shape[1], out_shape[1], scale)
    ref = np.einsum("ij,jkc,lk->ilc", rows, x, cols)
    out = imresize(x, scale)
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 1e-12


@pytest.mark.parametrize("scale", [0.5, 2.0, 1 / 3])
def test_imresize_in_blocks_matches_reference_and_one_block(rng, monkeypatch, scale):
    """Large images are resized block by block (bounded memory): the float64 reference still holds,
    and numpy's numbers are those of one block bit for bit."""
    x = rng.random((29, 34, 3))
    whole = imresize(x, scale)
    rows = reference_matrix(29, whole.shape[0], scale)
    cols = reference_matrix(34, whole.shape[1], scale)
    ref = np.einsum("ij,jkc,lk->ilc", rows, x, cols)
    monkeypatch.setattr(degradation, "RESIZE_BLOCK_ELEMENTS", 50)  # a few output rows per block
    monkeypatch.setattr(degradation, "RESIZE_WHOLE_TORCH", 0)
    blocks = imresize(x, scale)
    assert np.array_equal(blocks, whole)
    as_torch = imresize(torch.tensor(np.moveaxis(x, -1, 0)[None]), scale)[0].numpy()
    assert np.abs(np.moveaxis(as_torch, 0, -1) - ref).max() < 1e-12
    assert np.abs(blocks - ref).max() < 1e-12


def test_bicubic_upscale_is_the_clipped_interpolation(rng):
    """Bicubic overshoots at edges; the upscale clips it to [0, 1] in its own array (the input is
    left alone) with the numbers of clipping a separate copy."""
    image = np.zeros((6, 7, 3))
    image[:, 3:] = 1.0  # a step edge: the cubic rings above 1 and below 0 beside it
    image[0, 0] = rng.random(3)
    kept = image.copy()
    up = imresize(image, 2.0)
    assert up.max() > 1.0 and up.min() < 0.0
    out = bicubic_upscale(image, 2)
    assert np.array_equal(out, np.clip(up, 0, 1)) and np.array_equal(image, kept)


@pytest.mark.parametrize("shape, scale", [((37, 53, 3), 2), ((37, 53, 3), 4), ((40, 31), 2), ((5, 6, 1), 3)])
def test_bicubic_upscale_in_bands_equals_the_whole_image(rng, monkeypatch, shape, scale):
    """Bands of one output row, of a few rows and of odd sizes give the numbers of ``imresize``
    of the whole image, clipped, bit for bit."""
    image = rng.random(shape) * 1.4 - 0.2
    whole = np.clip(imresize(image, float(scale)), 0.0, 1.0)
    for band in (1, 7 * shape[1], 10**9):
        monkeypatch.setattr(degradation, "UPSCALE_BAND_ELEMENTS", band)
        out = bicubic_upscale(image, scale)
        assert out.shape == whole.shape and out.dtype == whole.dtype
        assert np.array_equal(out, whole)


def test_imresize_output_shape_and_anisotropic(rng):
    x = rng.random((20, 30))
    out = imresize(x, output_shape=(41, 15))
    ref = reference_matrix(20, 41, 41 / 20) @ x @ reference_matrix(30, 15, 0.5).T
    assert out.shape == (41, 15) and np.abs(out - ref).max() < 1e-12


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_imresize_torch_matches_numpy(rng, dtype, tol):
    x = rng.random((2, 3, 19, 26))
    for scale in (0.5, 2.0, 4.0):
        ref = np.stack([np.stack([imresize(x[b, c], scale) for c in range(3)]) for b in range(2)])
        out = imresize(torch.tensor(x, dtype=dtype), scale)
        assert out.dtype == dtype
        assert np.abs(out.numpy() - ref).max() < tol


def test_imresize_torch_is_differentiable():
    x = torch.rand(1, 1, 7, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, 2.0), (x,))
    assert torch.autograd.gradcheck(lambda t: imresize(t, 0.5), (x,))


def test_imresize_constant_and_linear_images():
    const = np.full((21, 16), 0.37)
    for scale in (0.5, 2.0, 3.0, 0.25):
        assert np.allclose(imresize(const, scale), 0.37, atol=1e-14)
    ramp = np.tile(np.arange(40.0), (8, 1))
    up = imresize(ramp, (1.0, 2.0))
    # Interior of an upscaled ramp is the ramp sampled at u = j/2 + 1/4 (0-based: (j - 0.5)/2).
    j = np.arange(8, 72)
    assert np.allclose(up[:, j], (j + 0.5) / 2 - 0.5, atol=1e-12)


def test_bicubic_taps_are_matlabs():
    assert np.array_equal(bicubic_taps(2) * 256, [-3, -9, 29, 111, 111, 29, -9, -3])
    taps4 = bicubic_taps(4)
    assert taps4.size == 16 and taps4.sum() == pytest.approx(1.0)
    # Odd scales sample on integer offsets: equal to imresize's own x1/3 weights.
    weights, _ = contributions(30, 10, 1 / 3)
    assert np.allclose(bicubic_taps(3), weights[5])
    k = bicubic_kernel(2)
    assert k.allow_negative and np.allclose(centre_of_mass(k.array), (k.size // 2,) * 2)


def test_matlab_half_downscale_samples_block_centres(rng):
    """MATLAB's x1/2 imresize is the 8-tap filter centred on 2i + 0.5 (block centres), as the
    handoff convention has it: rows 2i-3 .. 2i+4 for output i."""
    x = ndimage.gaussian_filter(rng.random((40, 48)), 1.0)
    taps = np.outer(bicubic_taps(2), bicubic_taps(2))
    padded = np.pad(x, 4, mode="symmetric")
    direct = np.array([[np.sum(taps * padded[2 * i + 1:2 * i + 9, 2 * j + 1:2 * j + 9]) for j in range(24)]
                       for i in range(20)])
    assert np.abs(imresize(x, 0.5) - direct).max() < 1e-12


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_degrade_equals_full_correlation_then_subsample(rng, scale):
    hr = rng.random((37, 42, 3))
    k = SRKernel(gaussian_kernel(9, np.array([[2.0, 0.5], [0.5, 1.0]])), scale)
    shifted = sampling_kernel(k, scale)
    ref = np.stack([ndimage.correlate(hr[..., c], shifted, mode="reflect")[::scale, ::scale] for c in range(3)], -1)
    out = degrade(hr, k, scale)
    assert out.shape == (math.ceil(37 / scale), math.ceil(42 / scale), 3)
    assert np.abs(out - ref).max() < 1e-12


def test_sampling_kernel_shift_is_half_block():
    k = SRKernel(gaussian_kernel(11, np.eye(2) * 1.5), 2)
    for scale in (2, 4):
        s = sampling_kernel(k, scale)
        c = s.shape[0] // 2
        assert np.allclose(centre_of_mass(s), (c + (scale - 1) / 2,) * 2, atol=1e-6)


def test_degraded_image_is_aligned_with_hr(rng):
    """Bicubic interpolation of an LR image made in the handoff convention has no sub-pixel shift:
    the cross-correlation of (upscaled LR) with HR peaks at zero offset, with sub-pixel accuracy."""
    hr = ndimage.gaussian_filter(rng.random((160, 160)), 3.0)
    k = SRKernel(gaussian_kernel(11, np.eye(2) * 1.0), 2)
    up = imresize(degrade(hr, k, 2), 2.0)
    a = hr[16:-16, 16:-16] - hr[16:-16, 16:-16].mean()
    b = up[16:-16, 16:-16] - up[16:-16, 16:-16].mean()
    xc = np.fft.irfft2(np.fft.rfft2(a) * np.conj(np.fft.rfft2(b)), a.shape)
    peak = np.unravel_index(np.argmax(xc), xc.shape)
    assert peak == (0, 0)
    # Parabolic sub-pixel refinement of the peak: within 0.05 px of zero in both axes.
    for axis in (0, 1):
        m, p = np.roll(xc, 1, axis)[0, 0], np.roll(xc, -1, axis)[0, 0]
        offset = 0.5 * (m - p) / (m - 2 * xc[0, 0] + p)
        assert abs(offset) < 0.05


def test_random_kernels_follow_protocol(rng):
    lams, sums = [], []
    for _ in range(200):
        pair = random_kernels(rng)
        assert pair[2].size == 11 and pair[4].size == 31
        lams += pair[2].provenance["eigenvalues"]
        sums.append(pair[2].array.sum())
        assert abs(pair[2].provenance["theta"]) <= np.pi
    assert min(lams) >= 0.6 and max(lams) <= 5.0
    assert np.allclose(sums, 1.0)


def test_gaussian_kernel_moments():
    cov = np.array([[2.0, 0.7], [0.7, 1.2]])
    k = gaussian_kernel(31, cov)
    r, c = np.mgrid[-15:16, -15:16]
    got = np.array([[np.sum(k * r * r), np.sum(k * r * c)], [np.sum(k * r * c), np.sum(k * c * c)]])
    assert np.allclose(got, cov, atol=1e-6)


@pytest.mark.parametrize("scale", [2, 4])
def test_regenerates_bsd100rk(bsd100rk, scale):
    """The reference degradation reproduces the benchmark's LR files from gt + true kernels."""
    for n in (1, 2, 37, 100):
        hr = read_image(bsd100rk / "gt" / f"im_{n}.png").rgb
        lr = read_image(bsd100rk / f"lr_x{scale}" / f"im_{n}.png").rgb
        k = sio.loadmat(str(bsd100rk / f"gt_k_x{scale}" / f"kernel_{n}.mat"))["Kernel"]
        out = quantize(degrade(hr, k, scale))
        assert psnr(out * 255, lr * 255) >= 44.0
