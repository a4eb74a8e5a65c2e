from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import io as sio
from scipy import ndimage

from blindsr.degradation import degrade, gaussian_kernel
from blindsr.errors import InputError
from blindsr.kernel import (SRKernel, centre_of_mass, crop_or_pad, dilate, load_kernel, recentre, save_kernel,
                            warp)


def gaussian(size: int, var_r: float, var_c: float, cov: float = 0.0) -> np.ndarray:
    return gaussian_kernel(size, np.array([[var_r, cov], [cov, var_c]]))


def test_validation_rejects_bad_arrays():
    good = gaussian(11, 2.0, 1.0)
    SRKernel(good, 2)
    with pytest.raises(ValueError, match="odd square"):
        SRKernel(np.ones((4, 4)) / 16, 2)
    with pytest.raises(ValueError, match="odd square"):
        SRKernel(np.ones((3, 5)) / 15, 2)
    with pytest.raises(ValueError, match="non-finite"):
        SRKernel(np.where(good > good.max() / 2, np.nan, good), 2)
    with pytest.raises(ValueError, match="sum to 1"):
        SRKernel(good * 1.01, 2)
    with pytest.raises(ValueError, match="scale"):
        SRKernel(good, 5)
    off = np.zeros((11, 11))
    off[2, 3] = 1.0
    with pytest.raises(ValueError, match="not centred"):
        SRKernel(off, 2)
    neg = good.copy()
    neg[0, 0] -= 0.01
    neg[5, 5] += 0.01
    with pytest.raises(ValueError, match="negative"):
        SRKernel(neg, 2)
    assert SRKernel(neg, 2, allow_negative=True).array.min() < 0


def test_kernel_is_read_only_copy():
    a = gaussian(11, 1.0, 1.0)
    k = SRKernel(a, 2)
    a[5, 5] = 7.0
    assert k.array[5, 5] != 7.0
    with pytest.raises(ValueError):
        k.array[0, 0] = 1.0


def test_recentre_moves_centre_of_mass_to_canvas_centre():
    a = gaussian(11, 1.5, 0.8, 0.3)
    shifted = np.zeros((13, 13))
    shifted[:11, 1:12] = a  # centre of mass at (5, 6) on a 13 canvas whose centre is (6, 6)
    for order in (1, 3):
        out = recentre(shifted, order=order)
        c = out.shape[0] // 2
        assert np.allclose(centre_of_mass(out), (c, c), atol=1e-9)
        assert out.sum() == pytest.approx(1.0)


def test_from_array_recentres_kernelgan_convention():
    """KernelGAN's native kernels sit +0.5 px off centre; the handoff type re-centres them."""
    a = gaussian(13, 1.2, 2.0, 0.4)
    native = recentre(np.pad(a, 2), order=3)
    native = ndimage.shift(native, (0.5, 0.5), order=3)
    k = SRKernel.from_array(native, 2)
    c = k.size // 2
    assert np.allclose(centre_of_mass(k.array), (c, c), atol=1e-6)
    assert k.provenance["centre_offset_px"] == pytest.approx([0.5, 0.5], abs=0.01)
    assert k.array.min() >= 0


def test_derive_x4_matches_authors_loop_formula():
    """Independent reference: the KernelGAN appendix's construction, written as a loop."""
    k2 = gaussian(11, 1.7, 0.9, 0.5)
    n = k2.shape[0]
    big = np.zeros((3 * n - 2, 3 * n - 2))
    for r in range(n):
        for c in range(n):
            big[2 * r:2 * r + n, 2 * c:2 * c + n] += k2[r, c] * k2
    big /= big.sum()
    k4 = SRKernel(k2, 2).derive_x4()
    assert k4.scale == 4
    ref = crop_or_pad(big, k4.size)
    assert np.allclose(k4.array, ref / ref.sum(), atol=1e-12)
    assert k4.provenance["lost_energy"] < 1e-6


def test_derive_x4_gaussian_covariance_is_five_times():
    """k2 (*) dilate(k2): covariance C + 4C = 5C (hand-derived)."""
    cov = np.array([[1.3, 0.4], [0.4, 0.9]])
    k2 = gaussian_kernel(21, cov)
    k4 = SRKernel(k2, 2).derive_x4().array
    c = k4.shape[0] // 2
    r, q = np.mgrid[-c:c + 1, -c:c + 1]
    measured = np.array([[np.sum(k4 * r * r), np.sum(k4 * r * q)], [np.sum(k4 * r * q), np.sum(k4 * q * q)]])
    m2 = np.array([[np.sum(k2 * a * b) for b in np.mgrid[-10:11, -10:11]] for a in np.mgrid[-10:11, -10:11]])
    assert np.allclose(measured, 5 * m2, rtol=1e-4)  # the x4 crop drops 1e-6 of the mass


def test_two_x2_steps_equal_one_x4_step(rng):
    hr = ndimage.gaussian_filter(rng.random((128, 128)), 1.5)
    k2 = SRKernel(gaussian(11, 1.2, 0.8, 0.2), 2)
    two_steps = degrade(degrade(hr, k2, 2), k2, 2)
    one_step = degrade(hr, k2.derive_x4(), 4)
    inner = (slice(6, -6), slice(6, -6))
    err = np.sqrt(np.mean((two_steps[inner] - one_step[inner]) ** 2))
    assert err < 2e-3 * np.ptp(hr)


def test_fit_support_records_lost_energy():
    k = SRKernel(gaussian(21, 6.0, 6.0), 2)
    small = k.fit_support(7)
    lost = 1 - crop_or_pad(k.array, 7).sum()
    assert small.size == 7 and small.array.sum() == pytest.approx(1.0)
    assert small.provenance["lost_energy"] == pytest.approx(lost)
    assert lost > 0.05
    assert k.fit_support(25).provenance["lost_energy"] == pytest.approx(0.0, abs=1e-12)


def test_dilate():
    a = np.arange(9.0).reshape(3, 3)
    d = dilate(a, 2)
    assert d.shape == (5, 5) and d[2, 4] == a[1, 2] and d[1].sum() == 0


def test_save_load_roundtrip(tmp_path):
    k = SRKernel(gaussian(11, 2.0, 0.7, -0.3), 2, provenance={"estimator": "test", "seed": 4})
    paths = save_kernel(k, tmp_path, "photo é v1.2")
    assert {p.name for p in paths.values()} == {f"photo é v1.2_kernel_x2.{e}" for e in ("npy", "mat", "png", "json")}
    assert np.array_equal(np.load(paths["npy"]), k.array)
    assert np.array_equal(sio.loadmat(str(paths["mat"]))["Kernel"], k.array)
    meta = json.loads(paths["json"].read_text())
    assert meta["provenance"]["seed"] == 4 and meta["scale"] == 2
    for p in (paths["npy"], paths["mat"]):
        back = load_kernel(p)
        assert back.scale == 2 and np.allclose(back.array, k.array)


def test_load_div2krk_style_mat_and_renormalise(tmp_path):
    a = gaussian(11, 2.5, 1.0, 0.2) * 0.999  # slightly off sum, as float32 files are
    sio.savemat(str(tmp_path / "kernel_3.mat"), {"Kernel": a.astype(np.float32)})
    k = load_kernel(tmp_path / "kernel_3.mat", scale=2)
    assert k.array.sum() == pytest.approx(1.0) and "renormalised_from_sum" in k.provenance


@pytest.mark.parametrize("array,message", [
    (np.full((5, 5), np.nan), "NaN"),
    (np.zeros((5, 5)), "all zeros"),
    (-np.ones((5, 5)), "sum must be positive"),
    (np.ones((3, 5)), "square"),
    (np.ones(5), "2-D"),
])
def test_load_rejects_bad_kernels(tmp_path, array, message):
    path = tmp_path / "bad_x2.npy"
    np.save(path, array)
    with pytest.raises(InputError, match=message):
        load_kernel(path)


def test_load_missing_and_wrong_variable(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_kernel(tmp_path / "none.npy")
    sio.savemat(str(tmp_path / "k.mat"), {"K": np.ones((3, 3))})
    with pytest.raises(InputError, match="Kernel"):
        load_kernel(tmp_path / "k.mat")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(InputError, match="unreadable"):
        load_kernel(tmp_path / "junk.npy")


def test_describe_reports_orientation():
    k = SRKernel(gaussian(15, 4.0, 1.0), 2)  # long along rows (vertical)
    d = k.describe()
    assert d["sigma_major"] == pytest.approx(2.0, rel=0.02)
    assert d["sigma_minor"] == pytest.approx(1.0, rel=0.02)
    assert d["angle_deg"] == pytest.approx(90.0, abs=1e-6)


def test_x4_derivation_via_convolve_is_centred():
    k2 = SRKernel(gaussian(11, 2.0, 1.0, 0.5), 2)
    k4 = k2.derive_x4()
    c = k4.size // 2
    assert np.allclose(centre_of_mass(k4.array), (c, c), atol=0.05)
    assert np.allclose(k4.array, k4.array[::-1, ::-1], atol=1e-12)  # symmetric in, symmetric out


def second_moments(k: np.ndarray) -> np.ndarray:
    c = np.array(centre_of_mass(k))
    r, q = np.indices(k.shape, dtype=np.float64)
    r, q = r - c[0], q - c[1]
    return np.array([[np.sum(k * r * r), np.sum(k * r * q)], [np.sum(k * r * q), np.sum(k * q * q)]])


@pytest.mark.parametrize("width", [0.9, 0.8, 0.6])
def test_narrowed_scales_covariance_by_width_squared(width):
    """An anisotropic, rotated Gaussian: covariance x width^2 (hand-derived for k(c + (x - c) / w)),
    centre of mass and orientation kept; 1% tolerance for sampling on the pixel grid."""
    cov = np.array([[3.0, 1.1], [1.1, 1.6]])
    kernel = SRKernel(gaussian(19, cov[0, 0], cov[1, 1], cov[0, 1]), 2, provenance={"estimator": "x"})
    out = kernel.narrowed(width)
    assert abs(out.array.sum() - 1) < 1e-9 and out.array.min() >= 0
    assert np.allclose(second_moments(out.array), width ** 2 * second_moments(kernel.array), rtol=0.01, atol=0.01)
    assert np.allclose(np.array(centre_of_mass(out.array)) - out.size // 2, 0, atol=1e-6)
    assert out.provenance["narrowed_to_width"] == width and out.provenance["estimator"] == "x"


def test_warp_identity_reproduces_the_taps_even_at_the_canvas_edge():
    """The identity map samples the cubic-spline interpolant at the knots, which returns the taps
    exactly; the edge taps too, although the centre of mass carries rounding noise (a sample a
    rounding error outside the canvas must not read as zero)."""
    k = gaussian(11, 1.1, 0.7, 0.3)
    k /= k.sum()
    assert np.abs(np.array(centre_of_mass(k)) - 5).max() < 1e-12
    assert np.allclose(warp(k), k, rtol=0, atol=1e-12)
    assert np.allclose(warp(k, size=15)[2:-2, 2:-2], k, rtol=0, atol=1e-12)


def test_warp_maps_second_moments_and_centres_on_the_canvas():
    """k'(x) = k(c + A^-1 x): covariance A C A^T (hand-derived), centre of mass on the canvas
    centre although the input's is off it."""
    cov = np.array([[2.0, 0.5], [0.5, 1.2]])
    a, b, angle = 0.3, -0.2, 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rot @ np.diag(np.exp([a, b])) @ rot.T
    k = np.roll(gaussian(31, cov[0, 0], cov[1, 1], cov[0, 1]), (1, -1), axis=(0, 1))  # centre off by a pixel
    out = warp(k, (a, b), angle, size=41)
    out /= out.sum()
    assert np.abs(np.array(centre_of_mass(out)) - 20).max() < 1e-3
    rows, cols = np.mgrid[-20:21, -20:21]
    moments = np.array([[np.sum(out * rows * rows), np.sum(out * rows * cols)],
                        [np.sum(out * rows * cols), np.sum(out * cols * cols)]])
    assert np.allclose(moments, matrix @ cov @ matrix.T, rtol=0.01)


def test_is_estimate_reads_the_fallback_from_the_provenance(tmp_path):
    """Every kernel is an estimate but a fallback to the bicubic kernel; a fallback recorded
    before ``fallback_kernel`` existed (its sidecar has only ``fallback``) was to the bicubic one."""
    k = SRKernel(gaussian(11, 1.5, 1.0), 2, provenance={"estimator": "kernelgan"})
    bicubic = k.with_provenance(fallback="kernelgan: confidence 0.1 is below 0.25", fallback_kernel="bicubic")
    unrefined = k.with_provenance(fallback="kernelgan unrefined: ...", fallback_kernel="unrefined")
    assert k.is_estimate and unrefined.is_estimate and unrefined.derive_x4().is_estimate
    assert not bicubic.is_estimate and not bicubic.derive_x4().is_estimate
    paths = save_kernel(k.with_provenance(fallback="kernelgan numerical fault"), tmp_path, "old")
    assert not load_kernel(paths["npy"]).is_estimate
    paths = save_kernel(unrefined, tmp_path, "new")
    assert load_kernel(paths["npy"]).is_estimate


def test_narrowed_identity_and_bad_width():
    kernel = SRKernel(gaussian(11, 1.0, 2.0), 2)
    assert kernel.narrowed(1.0) is kernel
    for bad in (0.0, -0.5, 1.2):
        with pytest.raises(ValueError, match="width"):
            kernel.narrowed(bad)
