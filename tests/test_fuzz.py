"""Property-based checks of the degradation, handoff and resize functions on random inputs."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from blindsr.degradation import degrade, gaussian_kernel, imresize, sampling_kernel
from blindsr.kernel import SRKernel, centre_of_mass

FAST = settings(max_examples=40, deadline=None)
finite = st.floats(0.0, 1.0, allow_nan=False, width=32)


def kernel_strategy():
    return st.builds(
        lambda size, a, b, c: gaussian_kernel(size, np.array([[a, c * math.sqrt(a * b)], [c * math.sqrt(a * b), b]])),
        st.sampled_from([3, 5, 7, 9, 11, 13]), st.floats(0.2, 6.0), st.floats(0.2, 6.0), st.floats(-0.9, 0.9))


@FAST
@given(kernel_strategy())
def test_handoff_kernels_sum_to_one_and_stay_centred(k):
    kernel = SRKernel.from_array(k * 3.7, 2)
    assert abs(kernel.array.sum() - 1) < 1e-9 and kernel.array.min() >= 0
    c = kernel.size // 2
    assert np.allclose(centre_of_mass(kernel.array), (c, c), atol=1e-6)
    k4 = kernel.derive_x4()
    assert abs(k4.array.sum() - 1) < 1e-9 and k4.size % 2 == 1


@FAST
@given(arrays(np.float64, st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(3)), elements=finite),
       kernel_strategy(), st.sampled_from([2, 3, 4]))
@example(np.ones((1, 1, 3)), gaussian_kernel(3, np.eye(2) * 0.6), 4)  # found by fuzzing: taps summed to 0.995
def test_degrade_shapes_and_range(hr, k, scale):
    lr = degrade(hr, k, scale)
    assert lr.shape == (math.ceil(hr.shape[0] / scale), math.ceil(hr.shape[1] / scale), 3)
    assert np.all(np.isfinite(lr))
    # A weighted average with the sampling kernel's taps: it can leave [lo, hi] only by the
    # negative lobes of the cubic-spline sub-pixel shift.
    taps = sampling_kernel(k, scale)
    slack = -taps[taps < 0].sum() * (hr.max() - hr.min()) + 1e-9
    assert lr.min() >= hr.min() - slack and lr.max() <= hr.max() + slack


@FAST
@given(st.integers(1, 50), st.integers(1, 50), st.floats(0.0, 1.0), st.sampled_from([0.25, 0.5, 0.75, 1.5, 2.0, 3.0, 4.0]))
def test_imresize_keeps_constant_images_constant(rows, cols, value, scale):
    out = imresize(np.full((rows, cols), value), scale)
    assert out.shape == (math.ceil(rows * scale - 1e-9), math.ceil(cols * scale - 1e-9))
    assert np.allclose(out, value, atol=1e-12)


@FAST
@given(st.integers(1, 30), st.integers(1, 30), kernel_strategy(), st.floats(0.0, 1.0))
def test_degrade_keeps_constant_images_constant(rows, cols, k, value):
    lr = degrade(np.full((rows, cols), value), k, 2)
    assert np.allclose(lr, value, atol=1e-6)
