"""Benchmark caches of the noise correction: the kept uncorrected kernel and when a cached
correction is made again."""
from __future__ import annotations

import numpy as np

from benchmarks.common import NOISE_REFIT_RULE, correction_current, kept_kernel
from blindsr.degradation import gaussian_kernel
from blindsr.kernel import SRKernel


def test_the_kept_kernel_comes_back_exactly_and_is_made_once(tmp_path):
    made = []

    def make():
        made.append(1)
        return SRKernel(gaussian_kernel(13, np.array([[2.3, 0.4], [0.4, 1.1]])) * (1 + 1e-13), 2,
                        provenance={"refinement": {"scored": "whole image", "log_scales": (0.1, -0.2)}})

    first = kept_kernel(tmp_path / "im_1_uncorrected.npy", make)
    again = kept_kernel(tmp_path / "im_1_uncorrected.npy", make)
    assert made == [1] and np.array_equal(first.array, again.array)  # bit for bit
    assert again.provenance["refinement"] == {"scored": "whole image", "log_scales": [0.1, -0.2]}


def test_a_cached_correction_stands_unless_it_refitted_under_another_rule():
    assert correction_current({"correction": None})  # a fallback: nothing to correct
    assert correction_current({"correction": {"applied": False, "skipped": "JPEG-compressed (quality 75)"}})
    assert correction_current({"correction": {"sigma": 1.2, "threshold": 1.5, "applied": False}})
    refitted = {"correction": {"sigma": 3.0, "draws": 2, "applied": True}}
    assert not correction_current(refitted)
    assert correction_current({**refitted, "refit_rule": NOISE_REFIT_RULE})
    assert not correction_current({**refitted, "refit_rule": "an older rule"})
